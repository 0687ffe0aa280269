"""SQL for runs, their steps and logs. Every statement filters by ``org_id``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from shared.db.pool import Pool

_DURATION = """
CASE WHEN {t}.started_at IS NOT NULL AND {t}.finished_at IS NOT NULL
     THEN (extract(epoch FROM {t}.finished_at - {t}.started_at) * 1000)::bigint END
AS duration_ms
"""
# Messages counted ahead of a queued run at most, in a read of one run and in a list
# (a page of 50 queued runs costs 50 bounded scans); past it the count reads "10,000+".
QUEUE_POSITION_CAP = 10_000
LIST_QUEUE_POSITION_CAP = 100
# A trigger's answer: the new run is at the back of the queue; counting past 10 would
# cost each trigger about 50 us more of Postgres time when the queue is deep.
TRIGGER_QUEUE_POSITION_CAP = 10


def _wait_reason(cap: int) -> str:
    """Why a queued or running run is not progressing; never null before the run ends.

    "Queued behind N messages": N counts the runs whose messages went into the shared
    JetStream work queue before this one's (published earlier; every organization's,
    since they share the queue) and that still wait for an executor (queued, not held
    back). The scan runs only for a queued, published run and is bounded twice: by the
    outbox index (queued runs created no later than this one was published; a run
    published earlier was created earlier) and by ``cap`` (about 1 ms per 1,000 runs
    ahead).
    """
    shown = f"{cap:,}+"
    return f"""
CASE
    WHEN r.status = 'queued' AND r.held
        THEN 'held by the schedule''s overlap policy (buffer_one) until its running run ends'
    WHEN r.status = 'queued' AND r.published_at IS NULL AND r.release_at > clock_timestamp()
        THEN 'released at ' || to_char(r.release_at AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
             || ' (schedule jitter or paced catch-up)'
    WHEN r.status = 'queued' AND r.published_at IS NULL
        THEN 'not published to the queue yet (the outbox sends it; NATS may be unreachable)'
    WHEN r.status = 'queued' AND coalesce(r.wait_reason, 'queued') = 'queued'
        THEN 'queued behind ' || (
            SELECT CASE WHEN count(*) >= {cap} THEN '{shown}'
                        ELSE to_char(count(*), 'FM999,999') END
              FROM (SELECT 1 FROM workflow_runs q
                     WHERE q.status = 'queued' AND q.created_at <= r.published_at
                       AND q.published_at IS NOT NULL AND NOT q.held
                       AND coalesce(q.wait_reason, 'queued') = 'queued'
                       AND (q.published_at, q.created_at, q.id)
                           < (r.published_at, r.created_at, r.id)
                     LIMIT {cap}) ahead
        ) || ' messages (executors busy or not running)'
    WHEN r.status = 'running' AND r.wait_reason IS NULL
        THEN 'not waiting: executing on executor ' || coalesce(r.executor_id, '(unknown)')
    ELSE r.wait_reason
END AS wait_reason
"""


def _columns(cap: int) -> str:
    return (
        """
r.id, r.org_id, r.workflow_id, r.workflow_version, r.schedule_id, r.trigger,
r.scheduled_for, r.status, r.attempt, r.input, r.output, r.error, r.idempotency_key,
r.created_at, r.published_at, r.started_at, r.finished_at, r.retry_of,
"""
        + _wait_reason(cap)
        + ","
        + _DURATION.format(t="r")
    )


COLUMNS = _columns(QUEUE_POSITION_CAP)
LIST_COLUMNS = _columns(LIST_QUEUE_POSITION_CAP)
TRIGGER_COLUMNS = _columns(TRIGGER_QUEUE_POSITION_CAP)

# Inserted only when the workflow belongs to the organization; an Idempotency-Key
# already used for this workflow inserts nothing (the unique partial index).
_INSERT_MANUAL = f"""
INSERT INTO workflow_runs AS r
    (id, org_id, workflow_id, workflow_version, trigger, status, input, idempotency_key)
SELECT $1, w.org_id, w.id, w.version, 'manual', 'queued', $4, $5
FROM workflows w WHERE w.id = $2 AND w.org_id = $3
ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING {COLUMNS}
"""
_BY_IDEMPOTENCY_KEY = f"""
SELECT {COLUMNS} FROM workflow_runs r
WHERE r.workflow_id = $1 AND r.org_id = $2 AND r.idempotency_key = $3
"""
_GET = f"SELECT {COLUMNS} FROM workflow_runs r WHERE r.id = $1 AND r.org_id = $2"
_STEPS = (
    """
SELECT node_id, node_type, status, attempt, input, output, error, started_at, finished_at,
"""
    + _DURATION.format(t="s")
    + """
FROM run_steps s WHERE s.run_id = $1 AND s.org_id = $2
ORDER BY s.started_at NULLS LAST, s.node_id
"""
)
_LIST = f"""
SELECT {LIST_COLUMNS} FROM workflow_runs r
WHERE r.org_id = $1
  AND ($2::uuid IS NULL OR r.workflow_id = $2)
  AND ($3::uuid IS NULL OR r.schedule_id = $3)
  AND ($4::text IS NULL OR r.status = $4)
  AND ($5::timestamptz IS NULL OR (r.created_at, r.id) < ($5, $6::uuid))
  AND ($8::timestamptz IS NULL OR r.created_at >= $8)
  AND ($9::timestamptz IS NULL OR r.created_at < $9)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $7
"""
# Cancelling is a status change: the executor's writes are fenced on status 'running',
# so a running run's executor stops at its next write, and a queued run is never claimed.
_CANCEL = """
UPDATE workflow_runs
SET status = 'cancelled', error = coalesce(error, 'cancelled by request'),
    finished_at = clock_timestamp()
WHERE id = $1 AND org_id = $2 AND status IN ('queued', 'running')
RETURNING id
"""
_CANCEL_STEPS = """
UPDATE run_steps
SET status = 'cancelled', error = coalesce(error, 'run cancelled'),
    finished_at = coalesce(finished_at, clock_timestamp())
WHERE run_id = $1 AND org_id = $2 AND status IN ('pending', 'running')
"""
# A retry is a new run with the same input, at the workflow's current version; one
# from the failed step keeps the original's version, since it resumes that graph.
_INSERT_RETRY = f"""
INSERT INTO workflow_runs AS r
    (id, org_id, workflow_id, workflow_version, trigger, status, input, retry_of)
SELECT $1, o.org_id, o.workflow_id,
       CASE WHEN $4 THEN o.workflow_version ELSE w.version END, 'retry', 'queued', o.input, o.id
FROM workflow_runs o JOIN workflows w ON w.id = o.workflow_id
WHERE o.id = $2 AND o.org_id = $3
  AND o.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
RETURNING {COLUMNS}
"""
# The executor skips steps already 'succeeded' on the run (that is how it resumes after
# a crash), so copying them makes the retry resume after them.
_COPY_SUCCEEDED_STEPS = """
INSERT INTO run_steps
    (run_id, node_id, org_id, node_type, status, attempt, input, output, error,
     started_at, finished_at)
SELECT $1, node_id, org_id, node_type, status, attempt, input, output, error,
       started_at, finished_at
FROM run_steps WHERE run_id = $2 AND org_id = $3 AND status = 'succeeded'
"""
_LOGS = """
SELECT id, run_id, node_id, level, message, data, created_at FROM run_logs
WHERE run_id = $1 AND org_id = $2
  AND ($3::bigint IS NULL OR id > $3)
  AND ($4::text IS NULL OR node_id = $4)
ORDER BY id
LIMIT $5
"""


async def create_manual(
    pool: Pool,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    *,
    run_input: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[asyncpg.Record | None, bool]:
    """Insert a queued manual run at the workflow's current version.

    Returns ``(row, created)``: the new run and True; the run an earlier request made
    with the same Idempotency-Key and False; or ``(None, False)`` when the workflow is
    not the organization's.
    """
    row = await pool.fetchrow(
        _INSERT_MANUAL, uuid.uuid4(), workflow_id, org_id, run_input, idempotency_key
    )
    if row is not None:
        return row, True
    if idempotency_key is None:
        return None, False
    existing = await pool.fetchrow(_BY_IDEMPOTENCY_KEY, workflow_id, org_id, idempotency_key)
    return existing, False


async def get(pool: Pool, org_id: uuid.UUID, run_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_GET, run_id, org_id)
    return row


# The outbox's "published" mark for one run, returning the run as a read shows it (its
# queue position bounded as in lists: a trigger answers at once, however deep the queue).
_MARK_PUBLISHED = f"""
UPDATE workflow_runs AS r SET published_at = now()
WHERE r.id = $1 AND r.org_id = $2
RETURNING {TRIGGER_COLUMNS}
"""


async def mark_published(pool: Pool, org_id: uuid.UUID, run_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_MARK_PUBLISHED, run_id, org_id)
    return row


async def steps(pool: Pool, org_id: uuid.UUID, run_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(_STEPS, run_id, org_id)


async def list_page(
    pool: Pool,
    org_id: uuid.UUID,
    *,
    workflow_id: uuid.UUID | None,
    schedule_id: uuid.UUID | None,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[asyncpg.Record]:
    """Newest first; ``created_after`` is inclusive, ``created_before`` exclusive."""
    created, last_id = after if after else (None, None)
    return await pool.fetch(
        _LIST,
        org_id,
        workflow_id,
        schedule_id,
        status,
        created,
        last_id,
        limit,
        created_after,
        created_before,
    )


async def cancel(pool: Pool, org_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    """Cancel a queued or running run and its unfinished steps; False if it had ended."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(_CANCEL, run_id, org_id) is None:
            return False
        await conn.execute(_CANCEL_STEPS, run_id, org_id)
    return True


async def create_retry(
    pool: Pool, org_id: uuid.UUID, run_id: uuid.UUID, *, from_failed: bool
) -> asyncpg.Record | None:
    """A new queued run repeating a finished one; None if it is missing or not finished.

    With ``from_failed`` the original's succeeded steps are copied into the new run in
    the same transaction, before anything is published.
    """
    async with pool.acquire() as conn, conn.transaction():
        row: asyncpg.Record | None = await conn.fetchrow(
            _INSERT_RETRY, uuid.uuid4(), run_id, org_id, from_failed
        )
        if row is not None and from_failed:
            await conn.execute(_COPY_SUCCEEDED_STEPS, row["id"], run_id, org_id)
    return row


async def logs(
    pool: Pool,
    org_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    after_id: int | None,
    node_id: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await pool.fetch(_LOGS, run_id, org_id, after_id, node_id, limit)
