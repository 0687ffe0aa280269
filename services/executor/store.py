"""The executor's SQL: claiming runs, fenced step and run writes, logs, giving up.

Fencing: a claim increments ``workflow_runs.attempt`` and every later write of that
claim is conditional on ``attempt`` still being the claimed value and the run still
``running``. The condition takes a share lock on the run row, so a competing claim
(an UPDATE of that row) waits for the write to commit and then sees the new state:
no write of a replica presumed dead can land after another replica's claim. A write
that matches nothing raises :class:`LostRun`.

Claims of a queued run whose workflow has ``max_concurrency`` lock the ``workflows``
row, so two replicas cannot both take the last free place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncpg import Record

from services.executor import metrics
from services.executor.errors import LostRun
from services.executor.groupwrite import GroupWriter
from shared.db import jsoncodec
from shared.db.pool import Connection, Pool
from shared.models.messages import RunMessage

# Claims of any number of runs in one round trip (services/executor/groupwrite.py): each
# run is taken, its trigger step recorded (when its id is known), and its pinned graph
# (when the caller has not cached it) and the steps that already succeeded (a resume, or
# a retry from the failed step whose earlier steps were copied in) read. A queued run of
# a workflow with a max_concurrency is not claimed here unless its ``limited_ok``:
# _claim_limited decides under a lock. The positions of the runs claimed come back (a
# run twice in one batch, a duplicate delivery, is claimed once).
CLAIMS = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::boolean[], $4::boolean[],
                         $5::boolean[], $6::text[])
        WITH ORDINALITY AS u(run_id, org_id, redelivered, limited_ok, need_graph, trigger_id, n)
), claimed AS (
    UPDATE workflow_runs r
       SET status = 'running', attempt = r.attempt + 1, wait_reason = NULL,
           started_at = coalesce(r.started_at, now()), executor_id = $7
      FROM u
     WHERE r.id = u.run_id AND r.org_id = u.org_id
       AND ((r.status = 'running' AND u.redelivered)
            OR (r.status = 'queued' AND (u.limited_ok OR NOT EXISTS (
                    SELECT 1 FROM workflows w
                     WHERE w.id = r.workflow_id AND w.max_concurrency IS NOT NULL))))
    RETURNING r.id, r.org_id, r.workflow_id, r.workflow_version, r.schedule_id, r.trigger,
              r.scheduled_for, r.attempt, r.input,
              extract(epoch FROM clock_timestamp() - r.started_at)::float8 AS elapsed_s,
              u.need_graph, u.trigger_id, u.n
), trigger_step AS (
    -- The trigger succeeds as the run is claimed (its node id, when known).
    INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt, output,
                           started_at, finished_at)
    SELECT c.id, c.org_id, c.trigger_id, 'trigger', 'succeeded', 1, c.input, now(), now()
      FROM claimed c WHERE c.trigger_id IS NOT NULL
    ON CONFLICT (run_id, node_id) DO NOTHING
)
SELECT c.id, c.org_id, c.workflow_id, c.workflow_version, c.schedule_id, c.trigger,
       c.scheduled_for, c.attempt, c.input, c.elapsed_s, c.n,
       CASE WHEN c.need_graph THEN (
           SELECT v.graph FROM workflow_versions v
            WHERE v.workflow_id = c.workflow_id AND v.version = c.workflow_version
              AND v.org_id = c.org_id) END AS graph,
       (SELECT jsonb_object_agg(s.node_id, jsonb_build_array(s.output, s.attempt))
          FROM run_steps s
         WHERE s.run_id = c.id AND s.org_id = c.org_id AND s.status = 'succeeded') AS done
  FROM claimed c
"""

LOCK_WORKFLOW_LIMIT = """
SELECT w.max_concurrency FROM workflows w JOIN workflow_runs r ON r.workflow_id = w.id
 WHERE r.id = $1 AND r.org_id = $2 AND r.status = 'queued'
   FOR UPDATE OF w
"""

COUNT_RUNNING = """
SELECT count(*) FROM workflow_runs
 WHERE workflow_id = $1 AND status = 'running' AND id <> $2
"""

HOLD = """
UPDATE workflow_runs SET wait_reason = $3 WHERE id = $1 AND org_id = $2 AND status = 'queued'
"""

# $1 run, $2 org, $3 claimed attempt: the fence shared by every write below.
_FENCE = """
EXISTS (SELECT 1 FROM workflow_runs
         WHERE id = $1 AND org_id = $2 AND attempt = $3 AND status = 'running' FOR SHARE)
"""

STEP_STARTED = f"""
INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt, input, started_at)
SELECT $1::uuid, $2::uuid, $4::text, $5::text, 'running', $6::integer, $7::jsonb, now()
 WHERE {_FENCE}
ON CONFLICT (run_id, node_id) DO UPDATE
   SET status = 'running', attempt = EXCLUDED.attempt, input = EXCLUDED.input,
       output = NULL, error = NULL,
       started_at = coalesce(run_steps.started_at, EXCLUDED.started_at), finished_at = NULL
"""

# Step ends of any number of runs (services/executor/groupwrite.py), each fenced by its
# own claim; $11-$13 the log lines of the steps (by the step's position in the batch),
# written only with their step. started_at is kept from step_started, or is the finish
# time for a step recorded only when it ends (instant nodes, skips). Run rows are
# share-locked in id order, so concurrent batches cannot deadlock. The positions of the
# steps written come back.
STEP_ENDS = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[],
                         $7::int[], $8::text[], $9::text[], $10::text[])
        WITH ORDINALITY AS u(run_id, org_id, claim, node_id, node_type, status, attempt,
                             output, error, input, n)
), fenced AS MATERIALIZED (
    SELECT u.* FROM u
      JOIN workflow_runs r ON r.id = u.run_id AND r.org_id = u.org_id AND r.attempt = u.claim
                          AND r.status = 'running'
     ORDER BY r.id
       FOR SHARE OF r
), step AS (
    INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt, input, output,
                           error, started_at, finished_at)
    SELECT run_id, org_id, node_id, node_type, status, attempt, input::jsonb, output::jsonb,
           error, now(), now()
      FROM fenced ORDER BY n
    ON CONFLICT (run_id, node_id) DO UPDATE
       SET status = EXCLUDED.status, attempt = EXCLUDED.attempt, output = EXCLUDED.output,
           error = EXCLUDED.error, finished_at = EXCLUDED.finished_at,
           input = coalesce(EXCLUDED.input, run_steps.input)
), logs AS (
    INSERT INTO run_logs (run_id, org_id, node_id, level, message)
    SELECT f.run_id, f.org_id, f.node_id, l.level, l.message
      FROM unnest($11::int[], $12::text[], $13::text[])
           WITH ORDINALITY AS l(step, level, message, k)
      JOIN fenced f ON f.n = l.step
     ORDER BY l.k
)
SELECT n FROM fenced
"""

SET_WAIT_REASON = """
UPDATE workflow_runs SET wait_reason = $4
 WHERE id = $1 AND org_id = $2 AND attempt = $3 AND status = 'running'
"""

# Final statuses of any number of runs (services/executor/groupwrite.py), each fenced
# by its own claim; with each, its steps left unfinished (a loop item cancelled, a node
# cancelled by a failure) recorded 'cancelled', and its schedule's counters, in the order
# the runs ended ($9; consecutive_failures counts the failures after a batch's last
# success). The $9 positions of the runs written come back.
# $4: the statuses each run may be in, comma separated ('running'; also 'cancelled'
# when the API cancelled it first and this executor records the end). Schedules are
# locked in id order, so concurrent batches cannot deadlock. The positions of the runs
# written come back.
RUN_ENDS = """
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::int[])
        WITH ORDINALITY AS u(run_id, org_id, claim, from_statuses, status, output, error,
                             steps_error, seq, n)
), run AS (
    UPDATE workflow_runs r
       SET status = u.status, output = u.output::jsonb, error = u.error, finished_at = now(),
           wait_reason = NULL
      FROM u
     WHERE r.id = u.run_id AND r.org_id = u.org_id AND r.attempt = u.claim
       AND r.status = ANY(string_to_array(u.from_statuses, ','))
    RETURNING r.id, r.org_id, r.schedule_id, u.status, u.steps_error, u.seq
), steps AS (
    UPDATE run_steps s SET status = 'cancelled', error = coalesce(s.error, run.steps_error),
                           finished_at = coalesce(s.finished_at, now())
      FROM run
     WHERE s.run_id = run.id AND s.org_id = run.org_id AND s.status IN ('pending', 'running')
), ended AS (
    SELECT run.*, max(seq) FILTER (WHERE status = 'succeeded')
                           OVER (PARTITION BY schedule_id) AS last_success
      FROM run WHERE schedule_id IS NOT NULL
), per_schedule AS (
    SELECT schedule_id, org_id,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status <> 'succeeded') AS failed,
           count(*) FILTER (WHERE status <> 'succeeded'
                              AND seq > coalesce(last_success, 0)) AS trailing_failed,
           bool_or(status = 'succeeded') AS any_succeeded
      FROM ended GROUP BY schedule_id, org_id
), locked AS MATERIALIZED (
    SELECT s.id FROM workflow_schedules s
      JOIN per_schedule p ON p.schedule_id = s.id AND p.org_id = s.org_id
     ORDER BY s.id
       FOR UPDATE OF s
), counted AS (
    UPDATE workflow_schedules s
       SET successful_runs = s.successful_runs + p.succeeded,
           failed_runs = s.failed_runs + p.failed,
           consecutive_failures = CASE WHEN p.any_succeeded THEN p.trailing_failed
                                       ELSE s.consecutive_failures + p.failed END
      FROM per_schedule p
     WHERE s.id = p.schedule_id AND s.id IN (SELECT id FROM locked)
)
SELECT seq FROM run
"""

GIVE_UP = """
UPDATE workflow_runs SET status = 'failed', error = $3, finished_at = now(), wait_reason = NULL
 WHERE id = $1 AND org_id = $2 AND status IN ('queued', 'running')
RETURNING schedule_id
"""

COUNT_FAILURE = """
UPDATE workflow_schedules
   SET failed_runs = failed_runs + 1, consecutive_failures = consecutive_failures + 1
 WHERE id = $1 AND org_id = $2
"""

INSERT_LOG = """
INSERT INTO run_logs (run_id, org_id, node_id, level, message, data)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""

LAST_ERROR = """
SELECT message FROM run_logs
 WHERE run_id = $1 AND org_id = $2 AND level = 'error' ORDER BY id DESC LIMIT 1
"""

RUN_STATUS = "SELECT status FROM workflow_runs WHERE id = $1 AND org_id = $2"


@dataclass(frozen=True)
class ClaimedRun:
    """A run this executor owns, as of claim ``attempt``."""

    id: uuid.UUID
    org_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    schedule_id: uuid.UUID | None
    trigger: str
    scheduled_for: datetime | None
    attempt: int
    input: Any
    elapsed_s: float  # since the run first started (earlier claims included)


@dataclass(frozen=True)
class StoredStep:
    output: Any
    attempt: int


@dataclass(frozen=True)
class Claim:
    """A claimed run, its graph JSON (None: not asked for, or the version is gone) and
    the steps that already succeeded, by step id."""

    run: ClaimedRun
    graph: Any
    succeeded: dict[str, StoredStep]


@dataclass(frozen=True)
class Held:
    """Not claimed: the workflow's ``max_concurrency`` is reached."""

    running: int
    limit: int


_CLAIM_FIELDS = ("graph", "done", "n")


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A delivery's claim of its run. ``trigger_id``: the graph's trigger, recorded
    succeeded by the claim (None when the graph is not cached yet)."""

    run_id: uuid.UUID
    org_id: uuid.UUID
    redelivered: bool
    need_graph: bool
    trigger_id: str | None
    limited_ok: bool = False


async def write_claims(
    db: Pool | Connection, executor_id: str, requests: list[ClaimRequest]
) -> list[Claim | None]:
    """Claim the runs in one statement; for each, its :class:`Claim`, or None when it
    was not taken here (someone else has it, it is finished, or it waits for
    :func:`_claim_limited`)."""
    # Rows are locked in run id order (the order of the batch), so concurrent batches
    # of other replicas (a redelivery, a duplicate) cannot deadlock with this one.
    order = sorted(range(len(requests)), key=lambda i: requests[i].run_id)
    batch = [requests[i] for i in order]
    rows = await db.fetch(
        CLAIMS,
        [r.run_id for r in batch],
        [r.org_id for r in batch],
        [r.redelivered for r in batch],
        [r.limited_ok for r in batch],
        [r.need_graph for r in batch],
        [r.trigger_id for r in batch],
        executor_id,
    )
    claims: list[Claim | None] = [None] * len(requests)
    for row in rows:
        position = order[row["n"] - 1]
        claims[position] = _claim(row, requests[position].trigger_id)
    return claims


async def claim_run(
    pool: Pool,
    message: RunMessage,
    *,
    executor_id: str,
    redelivered: bool,
    need_graph: bool = True,
    trigger_id: str | None = None,
    claims: GroupWriter[ClaimRequest, Claim | None] | None = None,
) -> Claim | Held | None:
    """Take the run: a ``queued`` run, or a ``running`` one when this is a redelivery
    (its previous executor died or handed it back). :class:`Held` when a queued run's
    workflow has ``max_concurrency`` runs running already (its ``wait_reason`` says
    so). None: someone else has it, or it is finished, and this delivery must be
    dropped. ``claims``: the executor's group writer of claims (one statement for the
    claims of concurrent deliveries); without it, this claim is sent alone."""
    request = ClaimRequest(message.run_id, message.org_id, redelivered, need_graph, trigger_id)
    if claims is not None:
        claim = await claims.submit(request)
    else:
        [claim] = await write_claims(pool, executor_id, [request])
    if claim is None:
        return await _claim_limited(
            pool, message, executor_id=executor_id, need_graph=need_graph, trigger_id=trigger_id
        )
    return claim


def _claim(row: Record, trigger_id: str | None) -> Claim:
    fields = {k: v for k, v in row.items() if k not in _CLAIM_FIELDS}
    done = row["done"] or {}
    succeeded = {node: StoredStep(pair[0], pair[1]) for node, pair in done.items()}
    run = ClaimedRun(**fields)
    if trigger_id is not None and trigger_id not in succeeded:
        succeeded[trigger_id] = StoredStep(run.input, 1)
    return Claim(run, row["graph"], succeeded)


async def _claim_limited(
    pool: Pool, message: RunMessage, *, executor_id: str, need_graph: bool, trigger_id: str | None
) -> Claim | Held | None:
    """The claim of a queued run whose workflow has a ``max_concurrency``: the
    workflow row is locked, so claims of its runs take turns and cannot overshoot."""
    async with pool.acquire() as conn, conn.transaction():
        limit = await conn.fetchval(LOCK_WORKFLOW_LIMIT, message.run_id, message.org_id)
        if limit is None:
            return None  # not queued (anymore): nothing for this delivery to do
        running = int(await conn.fetchval(COUNT_RUNNING, message.workflow_id, message.run_id))
        if running >= limit:
            reason = (
                f"held by max_concurrency: {running} of at most {limit} runs"
                " of this workflow are running"
            )
            await conn.execute(HOLD, message.run_id, message.org_id, reason)
            return Held(running, int(limit))
        request = ClaimRequest(
            message.run_id, message.org_id, False, need_graph, trigger_id, limited_ok=True
        )
        [claim] = await write_claims(conn, executor_id, [request])
    return claim


async def load_graph(pool: Pool, run: ClaimedRun) -> Any:
    """The graph JSON of the run's pinned version, or None when that version is gone."""
    return await pool.fetchval(
        "SELECT graph FROM workflow_versions WHERE workflow_id = $1 AND version = $2"
        " AND org_id = $3",
        run.workflow_id,
        run.workflow_version,
        run.org_id,
    )


async def run_status(pool: Pool, run: ClaimedRun) -> str | None:
    value = await pool.fetchval(RUN_STATUS, run.id, run.org_id)
    return str(value) if value is not None else None


async def give_up(pool: Pool, message: RunMessage, error: str) -> bool:
    """Fail a run whose message exhausted its deliveries; False if it had already ended."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(GIVE_UP, message.run_id, message.org_id, error)
        if row is None:
            return False
        if row["schedule_id"] is not None:
            await conn.execute(COUNT_FAILURE, row["schedule_id"], message.org_id)
    return True


async def last_error(pool: Pool, message: RunMessage) -> str | None:
    """The latest error logged for the run, the best reason for giving up on it."""
    value = await pool.fetchval(LAST_ERROR, message.run_id, message.org_id)
    return str(value) if value is not None else None


async def log(
    pool: Pool,
    run_id: uuid.UUID,
    org_id: uuid.UUID,
    level: str,
    message: str,
    *,
    node_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    await pool.execute(INSERT_LOG, run_id, org_id, node_id, level, message, data or {})


Mask = Callable[[Any], Any]


def _unmasked(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class StepEnd:
    """One step's end, fenced by its run's claim (``key``), with its log lines."""

    key: tuple[uuid.UUID, uuid.UUID, int]
    node_id: str
    node_type: str
    status: str
    attempt: int
    output: Any
    error: str | None
    input: Any
    logs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RunEnd:
    """One run's final status, fenced by its claim (``key``)."""

    key: tuple[uuid.UUID, uuid.UUID, int]
    from_statuses: tuple[str, ...]
    status: str
    output: Any
    error: str | None
    steps_error: str


async def write_step_ends(pool: Pool, ends: list[StepEnd]) -> list[bool]:
    """Write the step ends in one statement; for each, whether its fence let it in."""
    log_steps: list[int] = []
    levels: list[str] = []
    messages: list[str] = []
    for position, end in enumerate(ends, start=1):
        for level, message in end.logs:
            log_steps.append(position)
            levels.append(level)
            messages.append(message)
    rows = await pool.fetch(
        STEP_ENDS,
        [e.key[0] for e in ends],
        [e.key[1] for e in ends],
        [e.key[2] for e in ends],
        [e.node_id for e in ends],
        [e.node_type for e in ends],
        [e.status for e in ends],
        [e.attempt for e in ends],
        [_json(e.output) for e in ends],
        [e.error for e in ends],
        [_json(e.input) for e in ends],
        log_steps,
        levels,
        messages,
    )
    return _positions(rows, len(ends))


async def write_run_ends(pool: Pool, ends: list[RunEnd]) -> list[bool]:
    """Write the final statuses in one statement; for each, whether its fence let it in.

    Sent in run id order (the statement's plan updates the runs in the order given), as
    claims are, so the batches of two replicas take run row locks in the same order."""
    order = sorted(range(len(ends)), key=lambda i: ends[i].key[0])
    sent = [ends[i] for i in order]
    rows = await pool.fetch(
        RUN_ENDS,
        [e.key[0] for e in sent],
        [e.key[1] for e in sent],
        [e.key[2] for e in sent],
        [",".join(e.from_statuses) for e in sent],
        [e.status for e in sent],
        [_json(e.output) for e in sent],
        [e.error for e in sent],
        [e.steps_error for e in sent],
        [position + 1 for position in order],  # the order they ended in
    )
    return _positions(rows, len(ends), "seq")


def _json(value: Any) -> str | None:
    """A ``jsonb`` value as text for a ``text[]`` parameter (None stays SQL NULL): in a
    ``jsonb[]`` one, asyncpg would read a list value as another array dimension."""
    return None if value is None else jsoncodec.dumps(value)


def _positions(rows: list[Record], count: int, column: str = "n") -> list[bool]:
    written = {row[column] for row in rows}
    return [position in written for position in range(1, count + 1)]


class GroupWrites:
    """An executor's group writers: claims and step ends (through the step-write pool)
    and final statuses (through the pool that waits for the WAL flush)."""

    def __init__(self, pool: Pool, writes: Pool, executor_id: str) -> None:
        self.claims: GroupWriter[ClaimRequest, Claim | None] = GroupWriter(
            lambda requests: write_claims(writes, executor_id, requests),
            key=lambda request: request.run_id,
        )
        self.steps: GroupWriter[StepEnd, bool] = GroupWriter(
            lambda ends: write_step_ends(writes, ends),
            key=lambda end: (end.key[0], end.node_id),
        )
        self.runs: GroupWriter[RunEnd, bool] = GroupWriter(
            lambda ends: write_run_ends(pool, ends), key=lambda end: end.key[0]
        )


class RunStore:
    """Fenced writes of one claimed run. ``mask`` is applied to every value written
    (step inputs, outputs and errors, logs, the run's output and error): it replaces
    secret values with ``***``."""

    def __init__(
        self,
        pool: Pool,
        run: ClaimedRun,
        mask: Mask = _unmasked,
        *,
        writes: Pool | None = None,
        group: GroupWrites | None = None,
    ) -> None:
        self._pool = pool  # the final status
        self._writes = writes or pool  # steps, logs, wait reasons
        self._group = group  # step ends and final statuses combined with other runs'
        self._run = run
        self.mask = mask

    @property
    def run(self) -> ClaimedRun:
        return self._run

    def _key(self) -> tuple[uuid.UUID, uuid.UUID, int]:
        return self._run.id, self._run.org_id, self._run.attempt

    async def step_started(self, node_id: str, node_type: str, attempt: int, input: Any) -> None:
        status = await self._writes.execute(
            STEP_STARTED, *self._key(), node_id, node_type, attempt, self.mask(input)
        )
        _fenced(status)

    async def step_finished(
        self,
        node_id: str,
        node_type: str,
        status: str,
        *,
        attempt: int,
        output: Any = None,
        error: str | None = None,
        input: Any = None,
        logs: list[tuple[str, str]] | None = None,
    ) -> None:
        """The step's end (and, when it had no start row, its input), with the
        ``(level, message)`` log lines of the step not written yet.

        Raises:
            LostRun: the run is no longer this claim's (nothing was written).
        """
        mask = self.mask
        end = StepEnd(
            self._key(),
            node_id,
            node_type,
            status,
            attempt,
            mask(output),
            mask(error),
            mask(input),
            tuple((level, mask(message)) for level, message in logs or ()),
        )
        if self._group is not None:
            written = await self._group.steps.submit(end)
        else:
            [written] = await write_step_ends(self._writes, [end])
        if not written:
            raise LostRun("a fenced write matched no run: the run is no longer ours")
        metrics.STEPS.labels(node_type, status).inc()

    async def wait_reason(self, reason: str | None) -> None:
        """Why the run is not progressing now (None: it is executing)."""
        _fenced(await self._writes.execute(SET_WAIT_REASON, *self._key(), reason))

    async def log(
        self,
        level: str,
        message: str,
        *,
        node_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        await log(
            self._writes,
            self._run.id,
            self._run.org_id,
            level,
            self.mask(message),
            node_id=node_id,
            data=self.mask(data) if data else None,
        )

    async def finish(
        self,
        status: str,
        output: Any,
        error: str | None,
        *,
        steps_error: str = "not finished when the run ended",
        from_statuses: tuple[str, ...] = ("running",),
    ) -> None:
        """Set the final status, record unfinished steps ``cancelled`` with
        ``steps_error``, and move the schedule's counters: one atomic statement.

        Raises:
            LostRun: the run is no longer this claim's (nothing was written).
        """
        end = RunEnd(
            self._key(),
            from_statuses,
            status,
            self.mask(output),
            self.mask(error),
            steps_error,
        )
        if self._group is not None:
            written = await self._group.runs.submit(end)
        else:
            [written] = await write_run_ends(self._pool, [end])
        if not written:
            raise LostRun(f"run {self._run.id} is no longer ours (attempt {self._run.attempt})")


def _fenced(status: str) -> None:
    """``INSERT 0 n``: n = 0 means the fence held the write out."""
    if status.rsplit(" ", 1)[-1] == "0":
        raise LostRun("a fenced write matched no run: the run is no longer ours")
