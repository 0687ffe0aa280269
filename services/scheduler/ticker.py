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
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.scheduler import metrics, queries
from services.scheduler.decisions import Active, Decision, Outcome, Policies, decide
from services.scheduler.planning import DueSchedule, Plan, plan
from services.scheduler.wakeup import Wakeup
from shared.db.pool import Connection, Pool
from shared.ids import uuid_stream
from shared.messaging.pipeline import AckPipeline
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.models.messages import RunPointer
from shared.outbox import dispatch, message_from_row
from shared.settings import Settings

log = structlog.get_logger(__name__)

_OUTBOX_LIMIT = 1000


@dataclass
class TickResult:
    claimed: int = 0
    created: int = 0
    published: int = 0


@dataclass
class _Written:
    """A batch committed, not yet published."""

    result: TickResult
    messages: list[RunPointer]  # the runs written to publish now (not released later)
    now: datetime
    now_perf: float
    started: float
    committed: float


class Ticker:
    """Claims and fires due schedules; one per scheduler process."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        js: JetStreamContext,
        wakeup: Wakeup | None = None,
        *,
        nc: Client | None = None,
        pipeline: AckPipeline | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.js = js
        self.topology = Topology(settings.namespace)
        self.wakeup = wakeup or Wakeup()
        self.pipeline = pipeline  # batches publish at once; without, one ack at a time
        self.nc = nc  # for cancel control messages; without it the DB status alone stops runs
        self._last_sweep = 0.0
        self.cancelled: list[uuid.UUID] = []  # runs cancelled by cancel_other, to announce

    async def run(self, stop: asyncio.Event) -> None:
        """Fire schedules until ``stop`` is set."""
        while not stop.is_set():
            await self.wakeup.ensure(self.settings.database_url)
            self.wakeup.event.clear()
            try:
                result = await self.drain()
                await self.release()
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
        cap = min(self.settings.scheduler_max_sleep_s, self._until_sweep())
        for query in (queries.SECONDS_TO_NEXT, queries.SECONDS_TO_RELEASE):
            seconds = await self.pool.fetchval(query)
            if seconds is not None:
                cap = min(cap, float(seconds))
        return max(0.0, cap)

    async def release(self) -> int:
        """Publish runs whose release instant has come, and buffered runs now free."""
        unheld = await self.pool.fetch(queries.UNHOLD)
        rows = await self.pool.fetch(queries.RELEASABLE, _OUTBOX_LIMIT)
        if not rows:
            return 0
        published = await dispatch(
            self.pool,
            self.js,
            self.topology,
            [message_from_row(r) for r in rows],
            pipeline=self.pipeline,
        )
        log.info("runs released", runs=len(published), unheld=len(unheld))
        return len(published)

    async def tick(self) -> TickResult:
        """One claim-write-publish cycle."""
        written = await self._claim_and_write()
        if written is not None:
            await self._publish(written)
            return written.result
        return TickResult()

    async def drain(self) -> TickResult:
        """Fire batch after batch while batches come back full; the totals.

        Pipelined: batch N+1 is claimed and written while batch N's messages are being
        published (one publish in flight at a time), so a burst costs about the longer
        of the two per batch, not their sum. Every batch is committed before its
        publish, as in :meth:`tick`: a crash leaves unpublished rows to the outbox."""
        batches: list[_Written] = []
        publishing: asyncio.Task[None] | None = None
        try:
            while True:
                written = await self._claim_and_write()
                if publishing is not None:
                    await publishing
                    publishing = None
                if written is None:
                    break
                batches.append(written)
                publishing = asyncio.create_task(self._publish(written))
                if written.result.claimed < self.settings.scheduler_batch_size:
                    await publishing
                    publishing = None
                    break
        finally:
            if publishing is not None:  # the next claim failed: let this publish finish
                await asyncio.gather(publishing, return_exceptions=True)
        return TickResult(
            claimed=sum(w.result.claimed for w in batches),
            created=sum(w.result.created for w in batches),
            published=sum(w.result.published for w in batches),
        )

    async def _claim_and_write(self) -> _Written | None:
        """Claim a batch and write its runs, decisions and schedules in one transaction."""
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.CLAIM_DUE, self.settings.scheduler_batch_size)
            if not rows:
                return None
            now: datetime = await conn.fetchval(queries.DB_NOW)
            now_perf = time.perf_counter()
            created, messages = await self._write_runs(conn, rows, now)
        result = TickResult(claimed=len(rows), created=created)
        return _Written(result, messages, now, now_perf, started, time.perf_counter())

    async def _publish(self, written: _Written) -> None:
        """Publish a written batch, record its fire lag, log it."""
        messages = written.messages
        published = await dispatch(
            self.pool, self.js, self.topology, messages, pipeline=self.pipeline
        )
        written.result.published = len(published)
        # Lag on the database's clock: its "now" at claim time plus the time spent since.
        acked_at = written.now + timedelta(seconds=time.perf_counter() - written.now_perf)
        acked = set(published)
        for message in messages:
            if message.run_id in acked and message.scheduled_for is not None:
                metrics.FIRE_LAG.observe((acked_at - message.scheduled_for).total_seconds())
        metrics.BATCHES.inc()
        if self.cancelled:
            log.info("runs cancelled by overlap policy", runs=[str(r) for r in self.cancelled])
            await self._announce_cancelled()
        log.info(
            "batch fired",
            claimed=written.result.claimed,
            runs=written.result.created,
            published=written.result.published,
            write_ms=round((written.committed - written.started) * 1000, 1),
            publish_ms=round((time.perf_counter() - written.committed) * 1000, 1),
        )

    async def _write_runs(
        self, conn: Connection, rows: list[asyncpg.Record], now: datetime
    ) -> tuple[int, list[RunPointer]]:
        """Plan, decide and write one claimed batch: the number of runs written and the
        messages of those to publish now."""
        auto_paused = {r["id"] for r in rows if _should_auto_pause(r, now)}
        if auto_paused:
            await conn.execute(queries.AUTO_PAUSE, list(auto_paused))
            log.warning("schedules auto-paused", schedules=[str(i) for i in auto_paused])
        plans = _plans(rows, now)
        active = await self._active(conn, rows, plans)
        batch = _Batch()
        for row in rows:
            decided = plans[row["id"]]
            if decided.error:
                log.error("schedule cannot fire", schedule_id=str(row["id"]), error=decided.error)
            paused = row["id"] in auto_paused
            if _plain(row, decided, now, paused=paused):
                batch.add_plain(row, decided)
                continue
            policies = _policies(row, paused=paused)
            outcome = decide(decided, policies, active.get(row["id"], Active()), now)
            batch.add(row, decided, outcome)
        written: set[Any] = set()
        if batch.runs["id"]:
            inserted = await conn.fetch(queries.INSERT_RUNS, *batch.runs.values())
            written = {r["id"] for r in inserted}
        if batch.cancel:
            cancelled = await conn.fetch(queries.CANCEL_ACTIVE, batch.cancel, batch.runs["id"])
            self.cancelled.extend(r["id"] for r in cancelled)
        columns = batch.decision_columns(written)
        if columns[0]:
            await conn.execute(queries.INSERT_DECISIONS, *columns)
        metrics.FIRES.labels("created").inc(len(written))
        for kind, count in Counter(columns[3]).items():
            metrics.FIRES.labels(kind).inc(count)
        per_schedule = Counter(p.schedule_id for p in batch.pointers if p.run_id in written)
        await conn.execute(
            queries.ADVANCE_SCHEDULES,
            batch.advance["id"],
            batch.advance["next"],
            batch.advance["last"],
            [per_schedule.get(sid, 0) for sid in batch.advance["id"]],
        )
        now_ready = zip(batch.pointers, batch.publish_now, strict=True)
        return len(written), [p for p, ready in now_ready if ready and p.run_id in written]

    async def _active(
        self, conn: Connection, rows: list[asyncpg.Record], plans: dict[Any, Plan]
    ) -> dict[Any, Active]:
        """Runs in flight of the schedules whose overlap policy needs to know."""
        ids = [r["id"] for r in rows if r["overlap_policy"] != "allow" and plans[r["id"]].fires]
        if not ids:
            return {}
        found = await conn.fetch(queries.ACTIVE_RUNS, ids)
        return {r["schedule_id"]: Active(r["running"], r["queued"], r["held"]) for r in found}

    async def _announce_cancelled(self) -> None:
        """Tell the executors holding cancelled runs to stop them now."""
        cancelled, self.cancelled = self.cancelled, []
        if self.nc is None:
            return
        for run_id in cancelled:
            await self.nc.publish(f"{self.settings.namespace}.control.cancel.{run_id}", b"")

    def _until_sweep(self) -> float:
        interval = self.settings.scheduler_outbox_grace_s
        return max(0.0, self._last_sweep + interval - time.monotonic())

    async def _sweep_if_due(self) -> None:
        if self._until_sweep() <= 0:
            self._last_sweep = time.monotonic()
            await self.sweep_outbox()
            await self.check_health()

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
        published = await dispatch(
            self.pool, self.js, self.topology, messages, pipeline=self.pipeline
        )
        metrics.OUTBOX_REPUBLISHED.inc(len(published))
        log.warning("outbox republished runs", runs=len(published))
        return len(published)

    async def check_health(self) -> float:
        """Measure the due backlog and this host's clock skew against the database's;
        a skew beyond the setting is logged (due-ness never uses this host's clock)."""
        before = time.time()
        db_now: datetime = await self.pool.fetchval(queries.DB_NOW)
        after = time.time()
        skew = (before + after) / 2 - db_now.timestamp()
        metrics.CLOCK_SKEW.set(skew)
        if abs(skew) > self.settings.scheduler_max_clock_skew_s:
            log.warning(
                "this host's clock is off from the database's",
                skew_s=round(skew, 3),
                limit_s=self.settings.scheduler_max_clock_skew_s,
            )
        metrics.DUE_BACKLOG.set(await self.pool.fetchval(queries.DUE_BACKLOG))
        return skew

    async def _consumer_idle(self) -> bool:
        try:
            info = await self.js.consumer_info(self.topology.runs_stream, EXECUTORS_CONSUMER)
        except NotFoundError:
            return False
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)


class _Batch:
    """Column arrays for the bulk statements of one claimed batch."""

    def __init__(self) -> None:
        keys = ("id", "org", "wf", "ver", "sch", "at", "in", "release", "held")
        self.runs: dict[str, list[Any]] = {k: [] for k in keys}
        self.pointers: list[RunPointer] = []  # one per run row, in the same order
        self.publish_now: list[bool] = []  # neither held nor released later
        self.decisions: list[tuple[Any, Any, Decision, uuid.UUID | None]] = []
        self.advance: dict[str, list[Any]] = {"id": [], "next": [], "last": []}
        self.cancel: list[Any] = []
        self._ids = uuid_stream()

    def add(self, row: asyncpg.Record, decided: Plan, outcome: Outcome) -> None:
        for decision in outcome.decisions:
            run_id = next(self._ids) if decision.creates_run else None
            if decision.kind != "created":  # a plain creation is recorded by its run
                self.decisions.append((row["org_id"], row["id"], decision, run_id))
            if run_id is not None:
                self._run(row, run_id, decision.fire_time, decision.release_at, decision.held)
        if outcome.cancel_active:
            self.cancel.append(row["id"])
        self._advance(row, decided)

    def add_plain(self, row: asyncpg.Record, decided: Plan) -> None:
        """What :meth:`add` does with :func:`decide`'s outcome for a :func:`_plain`
        schedule, without building it: one run per fire, published at once."""
        for fire in decided.fires:
            self._run(row, next(self._ids), fire, None, False)
        self._advance(row, decided)

    def _run(
        self,
        row: asyncpg.Record,
        run_id: uuid.UUID,
        fire: datetime,
        release_at: datetime | None,
        held: bool,
    ) -> None:
        pointer = RunPointer(
            run_id,
            row["org_id"],
            row["workflow_id"],
            row["workflow_version"],
            "schedule",
            row["id"],
            fire,
        )
        runs = self.runs
        runs["id"].append(run_id)
        runs["org"].append(pointer.org_id)
        runs["wf"].append(pointer.workflow_id)
        runs["ver"].append(pointer.workflow_version)
        runs["sch"].append(pointer.schedule_id)
        runs["at"].append(fire)
        runs["in"].append(row["input"])
        runs["release"].append(release_at)
        runs["held"].append(held)
        self.pointers.append(pointer)
        self.publish_now.append(release_at is None and not held)

    def _advance(self, row: asyncpg.Record, decided: Plan) -> None:
        self.advance["id"].append(row["id"])
        self.advance["next"].append(decided.next_run_at)
        self.advance["last"].append(decided.fires[-1] if decided.fires else None)

    def decision_columns(self, written: set[Any]) -> list[list[Any]]:
        columns: list[list[Any]] = [[], [], [], [], [], []]
        for org_id, schedule_id, decision, run_id in self.decisions:
            kind: str = decision.kind
            reason, kept = decision.reason, run_id
            if run_id is not None and run_id not in written:
                kind, reason, kept = "duplicate", "a run for this fire time exists", None
            for column, value in zip(
                columns,
                (org_id, schedule_id, decision.fire_time, kind, kept, reason),
                strict=True,
            ):
                column.append(value)
        return columns


def _should_auto_pause(row: asyncpg.Record, now: datetime) -> bool:
    limit = row["auto_pause_after"]
    paused = row["paused_until"] is not None and row["paused_until"] > now
    return bool(limit and row["consecutive_failures"] >= limit and not paused)


def _plans(rows: list[asyncpg.Record], now: datetime) -> dict[Any, Plan]:
    """Each claimed schedule's plan. Schedules alike in everything :func:`plan` reads
    (the schedule id only matters to ``H`` fields) share one computation: a burst of
    schedules with the same expression, due at the same instant, costs one."""
    plans: dict[Any, Plan] = {}
    alike: dict[tuple[Any, ...], Plan] = {}
    for row in rows:
        cron = row["cron"]
        key = (
            cron,
            row["timezone"],
            row["next_run_at"],
            row["catchup_policy"],
            row["catchup_window_s"],
            row["max_catchup_runs"],
            row["end_at"],
            row["max_runs"],
            row["total_runs"],
            row["id"] if "H" in cron.upper() else None,
        )
        found = alike.get(key)
        if found is None:
            found = alike[key] = plan(_due(row), now)
        plans[row["id"]] = found
    return plans


def _plain(row: asyncpg.Record, decided: Plan, now: datetime, *, paused: bool) -> bool:
    """Whether :func:`decide` would only create runs, to publish at once: no missed
    fires, not paused, overlap ``allow``, no jitter and no paced catch-up."""
    paused_until = row["paused_until"]
    return (
        not decided.missed_fires
        and not paused
        and (paused_until is None or paused_until <= now)
        and row["overlap_policy"] == "allow"
        and row["jitter_s"] == 0
        and decided.caught_up == 0
    )


def _policies(row: asyncpg.Record, *, paused: bool) -> Policies:
    return Policies(
        schedule_id=str(row["id"]),
        overlap=row["overlap_policy"],
        jitter_s=row["jitter_s"],
        catchup_interval_s=row["catchup_interval_s"],
        paused_until=datetime.max.replace(tzinfo=UTC) if paused else row["paused_until"],
        pause_note=(
            f"auto-paused after {row['consecutive_failures']} consecutive failed runs"
            if paused
            else row["pause_note"]
        ),
    )


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
