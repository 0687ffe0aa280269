"""The executor's SQL: claiming runs, fenced step and run writes, logs, giving up.

Fencing: a claim increments ``workflow_runs.attempt`` and every later write of that
claim is conditional on ``attempt`` still being the claimed value and the run still
``running``. The condition takes a share lock on the run row, so a competing claim
(an UPDATE of that row) waits for the write to commit and then sees the new state:
no write of a replica presumed dead can land after another replica's claim. A write
that matches nothing raises :class:`LostRun`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

from services.executor.errors import LostRun
from shared.db.pool import Pool
from shared.models.messages import RunMessage

CLAIM = """
UPDATE workflow_runs
   SET status = 'running', attempt = attempt + 1,
       started_at = coalesce(started_at, now()), executor_id = $3
 WHERE id = $1 AND org_id = $2
   AND (status = 'queued' OR (status = 'running' AND $4::boolean))
RETURNING id, org_id, workflow_id, workflow_version, schedule_id, trigger, scheduled_for,
          attempt, input
"""

LOAD_GRAPH = """
SELECT graph FROM workflow_versions WHERE workflow_id = $1 AND version = $2 AND org_id = $3
"""

LOAD_SUCCEEDED_STEPS = """
SELECT node_id, output, attempt FROM run_steps
 WHERE run_id = $1 AND org_id = $2 AND status = 'succeeded'
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

STEP_FINISHED = f"""
INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt, output, error,
                       finished_at)
SELECT $1::uuid, $2::uuid, $4::text, $5::text, $6::text, $7::integer, $8::jsonb, $9::text,
       now()
 WHERE {_FENCE}
ON CONFLICT (run_id, node_id) DO UPDATE
   SET status = EXCLUDED.status, attempt = EXCLUDED.attempt, output = EXCLUDED.output,
       error = EXCLUDED.error, finished_at = EXCLUDED.finished_at
"""

FINISH_RUN = """
UPDATE workflow_runs SET status = $4, output = $5::jsonb, error = $6, finished_at = now()
 WHERE id = $1 AND org_id = $2 AND attempt = $3 AND status = 'running'
RETURNING schedule_id
"""

GIVE_UP = """
UPDATE workflow_runs SET status = 'failed', error = $3, finished_at = now()
 WHERE id = $1 AND org_id = $2 AND status IN ('queued', 'running')
RETURNING schedule_id
"""

COUNT_SUCCESS = """
UPDATE workflow_schedules
   SET successful_runs = successful_runs + 1, consecutive_failures = 0
 WHERE id = $1 AND org_id = $2
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


@dataclass(frozen=True)
class StoredStep:
    output: Any
    attempt: int


async def claim_run(
    pool: Pool, message: RunMessage, *, executor_id: str, redelivered: bool
) -> ClaimedRun | None:
    """Take the run: a ``queued`` run, or a ``running`` one when this is a redelivery
    (its previous executor died or handed it back). None: someone else has it, or it
    is finished, and this delivery must be dropped."""
    row = await pool.fetchrow(CLAIM, message.run_id, message.org_id, executor_id, redelivered)
    return ClaimedRun(**dict(row)) if row is not None else None


async def load_graph(pool: Pool, run: ClaimedRun) -> Any:
    """The graph JSON of the run's pinned version, or None when that version is gone."""
    return await pool.fetchval(LOAD_GRAPH, run.workflow_id, run.workflow_version, run.org_id)


async def load_succeeded_steps(pool: Pool, run: ClaimedRun) -> dict[str, StoredStep]:
    rows = await pool.fetch(LOAD_SUCCEEDED_STEPS, run.id, run.org_id)
    return {r["node_id"]: StoredStep(r["output"], r["attempt"]) for r in rows}


async def give_up(pool: Pool, message: RunMessage, error: str) -> bool:
    """Fail a run whose message exhausted its deliveries; False if it had already ended."""
    async with pool.acquire() as conn, conn.transaction():
        schedule_id = await conn.fetchrow(GIVE_UP, message.run_id, message.org_id, error)
        if schedule_id is None:
            return False
        await _count(conn, schedule_id["schedule_id"], message.org_id, succeeded=False)
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


async def _count(
    conn: PoolConnectionProxy[Record],
    schedule_id: uuid.UUID | None,
    org_id: uuid.UUID,
    *,
    succeeded: bool,
) -> None:
    # Increments in SQL, so runs of one schedule finishing together all count.
    if schedule_id is not None:
        await conn.execute(COUNT_SUCCESS if succeeded else COUNT_FAILURE, schedule_id, org_id)


class RunStore:
    """Fenced writes of one claimed run."""

    def __init__(self, pool: Pool, run: ClaimedRun) -> None:
        self._pool = pool
        self._run = run

    @property
    def run(self) -> ClaimedRun:
        return self._run

    def _key(self) -> tuple[uuid.UUID, uuid.UUID, int]:
        return self._run.id, self._run.org_id, self._run.attempt

    async def step_started(self, node_id: str, node_type: str, attempt: int, input: Any) -> None:
        status = await self._pool.execute(
            STEP_STARTED, *self._key(), node_id, node_type, attempt, input
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
    ) -> None:
        result = await self._pool.execute(
            STEP_FINISHED, *self._key(), node_id, node_type, status, attempt, output, error
        )
        _fenced(result)

    async def log(
        self,
        level: str,
        message: str,
        *,
        node_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        await log(
            self._pool, self._run.id, self._run.org_id, level, message, node_id=node_id, data=data
        )

    async def finish(self, status: str, output: Any, error: str | None) -> None:
        """Set the final status and move the schedule's counters, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(FINISH_RUN, *self._key(), status, output, error)
            if row is None:
                raise LostRun(f"run {self._run.id} is no longer ours (attempt {self._run.attempt})")
            await _count(
                conn, row["schedule_id"], self._run.org_id, succeeded=status == "succeeded"
            )


def _fenced(status: str) -> None:
    """``INSERT 0 n``: n = 0 means the fence held the write out."""
    if status.rsplit(" ", 1)[-1] == "0":
        raise LostRun("a fenced write matched no run: the run is no longer ours")
