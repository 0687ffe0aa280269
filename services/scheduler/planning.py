"""What a due schedule fires now: pure functions, no I/O.

Given a schedule whose ``next_run_at`` has passed, decide which fire times become runs
and what the next fire time is. Fire times later than the on-time grace are *missed*;
the schedule's catch-up policy says what happens to missed fires inside its
``catchup_window_s`` (older ones are always dropped):

* ``skip``   — none of them run;
* ``latest`` — the most recent one runs (the default, like a Kubernetes CronJob);
* ``all``    — each runs, at most ``max_catchup_runs`` (the most recent ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from croniter import CroniterError

from shared.cron import CronError, CronSchedule

# A fire this late is still on time, not missed: covers a scheduler restart or a
# long GC pause without invoking the catch-up policy.
ON_TIME_GRACE = timedelta(seconds=60)
# Fire times looked at one by one before jumping ahead (a per-second schedule that
# was down for a day would otherwise mean 86,400 iterations).
_MAX_SCAN = 1000
# Missed fires written one by one to the decision history; beyond, one summary line.
MAX_MISSED_RECORDED = 100

CatchupPolicy = Literal["skip", "latest", "all"]


@dataclass(frozen=True)
class DueSchedule:
    id: str
    cron: str
    timezone: str
    next_run_at: datetime
    catchup_policy: CatchupPolicy = "latest"
    catchup_window_s: int = 3600
    max_catchup_runs: int = 10
    end_at: datetime | None = None
    max_runs: int | None = None
    total_runs: int = 0


@dataclass
class Plan:
    fires: list[datetime] = field(default_factory=list)
    caught_up: int = 0  # how many of ``fires`` (the first ones) are late catch-up fires
    missed: int = 0
    missed_fires: list[datetime] = field(default_factory=list)  # the first missed ones
    next_run_at: datetime | None = None
    error: str | None = None


def plan(schedule: DueSchedule, now: datetime) -> Plan:
    """The fires to create now and the next fire time after ``now``."""
    cron = CronSchedule(schedule.cron, schedule.timezone, hash_id=schedule.id)
    try:
        due = _due_fires(cron, schedule.next_run_at, now, schedule)
    except (CronError, CroniterError) as exc:
        # Validated when written, so only a zone removed from the tz database gets
        # here: the schedule stops firing rather than looping hot.
        return Plan(error=str(exc))
    on_time = [f for f in due if now - f <= ON_TIME_GRACE]
    late = [f for f in due if now - f > ON_TIME_GRACE]
    window_start = now - timedelta(seconds=schedule.catchup_window_s)
    eligible = [f for f in late if f >= window_start]
    if schedule.catchup_policy == "all":
        caught = eligible[-schedule.max_catchup_runs :]
    elif schedule.catchup_policy == "latest":
        caught = eligible[-1:] if not on_time else []
    else:
        caught = []
    fires = caught + on_time
    if schedule.max_runs is not None:
        fires = fires[: max(0, schedule.max_runs - schedule.total_runs)]
    chosen = set(fires)
    missed_fires = [f for f in due if f not in chosen]
    result = Plan(
        fires=fires,
        caught_up=len([f for f in caught if f in chosen]),
        missed=len(missed_fires),
        missed_fires=missed_fires[:MAX_MISSED_RECORDED],
    )
    if schedule.max_runs is not None and schedule.total_runs + len(fires) >= schedule.max_runs:
        return result  # the run limit is reached: no next fire
    upcoming = cron.next_after(now)
    if upcoming is not None and (schedule.end_at is None or upcoming <= schedule.end_at):
        result.next_run_at = upcoming
    return result


def _due_fires(
    cron: CronSchedule, first: datetime, now: datetime, schedule: DueSchedule
) -> list[datetime]:
    """Fire times from ``first`` up to ``now`` (inclusive), skipping far-past ones."""
    horizon = now - timedelta(seconds=schedule.catchup_window_s) - ON_TIME_GRACE
    start = first
    if start < horizon:
        # Everything before the catch-up window is dropped anyway: start at its edge.
        restart = cron.next_after(horizon - timedelta(microseconds=1))
        if restart is None:
            return []
        start = restart
    fires: list[datetime] = []
    current: datetime | None = start
    for _ in range(_MAX_SCAN):
        if current is None or current > now:
            break
        if schedule.end_at is not None and current > schedule.end_at:
            break
        fires.append(current)
        current = cron.next_after(current)
    else:
        # Still behind after the scan: keep the tail that the policies can use.
        tail = cron.next_n(now - ON_TIME_GRACE - timedelta(microseconds=1), _MAX_SCAN)
        fires = sorted({*fires[-schedule.max_catchup_runs :], *(f for f in tail if f <= now)})
    return fires
