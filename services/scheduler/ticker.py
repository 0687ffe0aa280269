"""The scheduler loop: claim due schedules, write their runs, publish them.

One cycle (:meth:`Ticker.tick`):

1. in one transaction, claim up to ``batch_size`` due schedules
   (``FOR UPDATE SKIP LOCKED``), insert one run row per fire
   (``ON CONFLICT (schedule_id, scheduled_for) DO NOTHING``) and advance each
   schedule's ``next_run_at`` — a crash anywhere before the commit changes nothing;
2. after the commit, publish each new run (``Nats-Msg-Id`` = run id) and record it.

Between cycles the loop sleeps until the earliest ``next_run_at`` by the database's
clock, cut short by NOTIFY when a person changes a schedule.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.scheduler import queries
from services.scheduler.planning import DueSchedule, plan
from services.scheduler.wakeup import Wakeup
from shared.db.pool import Connection
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.outbox import dispatch, message_from_row
from shared.settings import Settings

log = structlog.get_logger(__name__)

_OUTBOX_LIMIT = 1000


@dataclass
class TickResult:
    claimed: int = 0
    created: int = 0
    published: int = 0


class Ticker:
    """Claims and fires due schedules; one per scheduler process."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.js = js
        self.topology = Topology(settings.namespace)
        self.wakeup = wakeup or Wakeup()
        self._last_sweep = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Fire schedules until ``stop`` is set."""
        while not stop.is_set():
            await self.wakeup.ensure(self.settings.database_url)
            self.wakeup.event.clear()
            try:
                result = await self.tick()
                await self._sweep_if_due()
                delay = (
                    0.0
                    if result.claimed >= self.settings.scheduler_batch_size
                    else (await self.seconds_to_next())
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("scheduler cycle failed; retrying", error=repr(exc))
                delay = 1.0
            await self.wakeup.wait(delay, stop)

    async def seconds_to_next(self) -> float:
        """Seconds until the next fire (by the database clock), capped by the sleep cap."""
        seconds = await self.pool.fetchval(queries.SECONDS_TO_NEXT)
        cap = min(self.settings.scheduler_max_sleep_s, self._until_sweep())
        if seconds is None:
            return cap
        return max(0.0, min(float(seconds), cap))

    async def tick(self) -> TickResult:
        """One claim-write-publish cycle."""
        started = time.perf_counter()
        result = TickResult()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.CLAIM_DUE, self.settings.scheduler_batch_size)
            result.claimed = len(rows)
            if not rows:
                return result
            now: datetime = await conn.fetchval(queries.DB_NOW)
            created = await self._write_runs(conn, rows, now)
        result.created = len(created)
        messages = [message_from_row(r) for r in created]
        published = await dispatch(self.pool, self.js, self.topology, messages)
        result.published = len(published)
        log.info(
            "batch fired",
            claimed=result.claimed,
            runs=result.created,
            published=result.published,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result

    async def _write_runs(
        self, conn: Connection, rows: list[asyncpg.Record], now: datetime
    ) -> list[asyncpg.Record]:
        runs: dict[str, list[Any]] = {k: [] for k in ("id", "org", "wf", "ver", "sch", "at", "in")}
        advance: dict[str, list[Any]] = {"id": [], "next": [], "last": []}
        for row in rows:
            decided = plan(_due(row), now)
            if decided.error:
                log.error("schedule cannot fire", schedule_id=str(row["id"]), error=decided.error)
            if decided.missed:
                log.info(
                    "fires missed by catch-up policy",
                    schedule_id=str(row["id"]),
                    missed=decided.missed,
                    policy=row["catchup_policy"],
                )
            for fire in decided.fires:
                runs["id"].append(uuid.uuid4())
                runs["org"].append(row["org_id"])
                runs["wf"].append(row["workflow_id"])
                runs["ver"].append(row["workflow_version"])
                runs["sch"].append(row["id"])
                runs["at"].append(fire)
                runs["in"].append(row["input"])
            advance["id"].append(row["id"])
            advance["next"].append(decided.next_run_at)
            advance["last"].append(decided.fires[-1] if decided.fires else None)
        created = await conn.fetch(queries.INSERT_RUNS, *runs.values()) if runs["id"] else []
        per_schedule = Counter(r["schedule_id"] for r in created)
        await conn.execute(
            queries.ADVANCE_SCHEDULES,
            advance["id"],
            advance["next"],
            advance["last"],
            [per_schedule.get(sid, 0) for sid in advance["id"]],
        )
        return created

    def _until_sweep(self) -> float:
        interval = self.settings.scheduler_outbox_grace_s
        return max(0.0, self._last_sweep + interval - time.monotonic())

    async def _sweep_if_due(self) -> None:
        if self._until_sweep() <= 0:
            self._last_sweep = time.monotonic()
            await self.sweep_outbox()

    async def sweep_outbox(self) -> int:
        """Publish runs whose publication was lost; the number re-sent is returned."""
        rows = await self.pool.fetch(
            queries.UNPUBLISHED, self.settings.scheduler_outbox_grace_s, _OUTBOX_LIMIT
        )
        messages = [message_from_row(r) for r in rows]
        if await self._consumer_idle():
            stale = await self.pool.fetch(
                queries.STALE_PUBLISHED, self.settings.scheduler_republish_after_s, _OUTBOX_LIMIT
            )
            messages += [message_from_row(r) for r in stale]
        if not messages:
            return 0
        published = await dispatch(self.pool, self.js, self.topology, messages)
        log.warning("outbox republished runs", runs=len(published))
        return len(published)

    async def _consumer_idle(self) -> bool:
        try:
            info = await self.js.consumer_info(self.topology.runs_stream, EXECUTORS_CONSUMER)
        except NotFoundError:
            return False
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def _due(row: asyncpg.Record) -> DueSchedule:
    return DueSchedule(
        id=str(row["id"]),
        cron=row["cron"],
        timezone=row["timezone"],
        next_run_at=row["next_run_at"],
        catchup_policy=row["catchup_policy"],
        catchup_window_s=row["catchup_window_s"],
        max_catchup_runs=row["max_catchup_runs"],
        end_at=row["end_at"],
        max_runs=row["max_runs"],
        total_runs=row["total_runs"],
    )
