"""What becomes of each planned fire: overlap and pause policies, jitter, pacing.

Pure functions. :func:`decide` takes one claimed schedule's plan and the runs of that
schedule still in flight, and returns one :class:`Decision` per fire time — the
rows of the schedule's decision history — and the runs to write.

Overlap policies, when a run of the same schedule is still queued or running:

* ``allow`` (default) — start the new run anyway;
* ``skip`` — record the fire as ``skipped_overlap`` and start nothing;
* ``buffer_one`` — write one run, *held* until the running one ends; further fires
  while one is held are skipped;
* ``cancel_other`` — cancel the runs in flight, then start the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.scheduler.planning import Plan
from shared.jitter import jitter_delay

Overlap = Literal["allow", "skip", "buffer_one", "cancel_other"]
DecisionKind = Literal[
    "created", "buffered", "skipped_overlap", "missed", "paused", "cancelled_other"
]


@dataclass(frozen=True)
class Policies:
    schedule_id: str
    overlap: Overlap = "allow"
    jitter_s: int = 0
    catchup_interval_s: float = 1.0
    paused_until: datetime | None = None
    pause_note: str = ""


@dataclass(frozen=True)
class Active:
    """The schedule's runs in flight at claim time."""

    running: int = 0
    queued: int = 0
    held: int = 0

    @property
    def any(self) -> bool:
        return self.running + self.queued + self.held > 0


@dataclass(frozen=True)
class Decision:
    fire_time: datetime
    kind: DecisionKind
    reason: str = ""
    release_at: datetime | None = None  # for runs to write: publish not before
    held: bool = False

    @property
    def creates_run(self) -> bool:
        return self.kind in ("created", "buffered", "cancelled_other")


@dataclass
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    cancel_active: bool = False


def decide(plan: Plan, policies: Policies, active: Active, now: datetime) -> Outcome:
    """Decisions for every fire time the plan considered, in fire-time order."""
    out = Outcome()
    for fire in plan.missed_fires:
        out.decisions.append(Decision(fire, "missed", "late beyond the catch-up policy"))
    if plan.missed > len(plan.missed_fires) and plan.missed_fires:
        extra = plan.missed - len(plan.missed_fires)
        out.decisions.append(
            Decision(plan.missed_fires[-1], "missed", f"and {extra} earlier fires")
        )
    if policies.paused_until is not None and policies.paused_until > now:
        note = policies.pause_note or "paused"
        until = "" if policies.paused_until.year >= 9999 else f" until {policies.paused_until}"
        for fire in plan.fires:
            out.decisions.append(Decision(fire, "paused", f"{note}{until}"))
        return out
    in_flight = active.any
    held = active.held
    for index, fire in enumerate(plan.fires):
        release = _release_at(plan, policies, index, fire, now)
        if not in_flight or policies.overlap == "allow":
            out.decisions.append(Decision(fire, "created", release_at=release))
            in_flight = True
        elif policies.overlap == "skip":
            out.decisions.append(
                Decision(fire, "skipped_overlap", "a previous run is still in flight")
            )
        elif policies.overlap == "buffer_one":
            if held:
                out.decisions.append(Decision(fire, "skipped_overlap", "a run is already buffered"))
            else:
                held += 1
                out.decisions.append(
                    Decision(
                        fire,
                        "buffered",
                        "held until the running run ends",
                        release_at=release,
                        held=True,
                    )
                )
        else:  # cancel_other
            out.cancel_active = True
            out.decisions.append(
                Decision(
                    fire, "cancelled_other", "runs in flight were cancelled", release_at=release
                )
            )
    out.decisions.sort(key=lambda d: d.fire_time)
    return out


def _release_at(
    plan: Plan, policies: Policies, index: int, fire: datetime, now: datetime
) -> datetime | None:
    """Jitter delays a fire; caught-up fires are paced ``catchup_interval_s`` apart."""
    release = fire + jitter_delay(policies.schedule_id, fire, policies.jitter_s)
    if index < plan.caught_up and policies.catchup_interval_s > 0:
        release = max(release, now + timedelta(seconds=index * policies.catchup_interval_s))
    return release if release > now else None
