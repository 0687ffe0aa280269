"""SQL for schedules. Every statement filters by ``org_id``.

Writers of a workflow's default schedule run in one transaction that first locks the
workflow row, so two concurrent ``POST /schedule`` calls cannot both create one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.api.queries import Conn
from shared.db.pool import Pool

COLUMNS = """
s.id, s.workflow_id, w.name AS workflow_name, s.name, s.is_default, s.cron, s.timezone,
s.enabled, s.input, s.catchup_policy, s.overlap_policy, s.paused_until, s.next_run_at,
s.last_run_at, s.total_runs, s.successful_runs, s.failed_runs, s.created_at, s.updated_at
"""
_READ = f"""
SELECT {COLUMNS} FROM workflow_schedules s JOIN workflows w ON w.id = s.workflow_id
WHERE s.id = $1 AND s.org_id = $2
"""
_READ_DEFAULT = f"""
SELECT {COLUMNS} FROM workflow_schedules s JOIN workflows w ON w.id = s.workflow_id
WHERE s.workflow_id = $1 AND s.org_id = $2 AND s.is_default
"""
_LOCK_WORKFLOW = """
SELECT id FROM workflows WHERE id = $1 AND org_id = $2 FOR NO KEY UPDATE
"""
_LOCK_DEFAULT = """
SELECT id, cron, timezone, enabled, input, next_run_at FROM workflow_schedules
WHERE workflow_id = $1 AND org_id = $2 AND is_default
FOR UPDATE
"""
_INSERT_DEFAULT = """
INSERT INTO workflow_schedules
    (id, org_id, workflow_id, name, is_default, cron, timezone, enabled, input, next_run_at)
VALUES ($1, $2, $3, 'default', true, $4, $5, $6, $7, $8)
"""
# cron is always in the SET list: the NOTIFY trigger fires on UPDATE OF cron, timezone,
# enabled…, and a statement that names none of them would not wake the schedulers.
_UPDATE = """
UPDATE workflow_schedules
SET cron = $3, timezone = $4, enabled = $5, input = $6, next_run_at = $7,
    consecutive_failures = CASE WHEN $8 THEN 0 ELSE consecutive_failures END,
    updated_at = now()
WHERE id = $1 AND org_id = $2
"""
_DELETE_DEFAULT = """
DELETE FROM workflow_schedules WHERE workflow_id = $1 AND org_id = $2 AND is_default
"""
_WORKFLOW_EXISTS = "SELECT EXISTS (SELECT 1 FROM workflows WHERE id = $1 AND org_id = $2)"
_LIST = f"""
SELECT {COLUMNS} FROM workflow_schedules s JOIN workflows w ON w.id = s.workflow_id
WHERE s.org_id = $1
  AND ($2::uuid IS NULL OR s.workflow_id = $2)
  AND ($3::boolean IS NULL OR s.enabled = $3)
  AND ($4::timestamptz IS NULL OR (s.created_at, s.id) < ($4, $5::uuid))
ORDER BY s.created_at DESC, s.id DESC
LIMIT $6
"""


async def db_now(conn: Conn) -> datetime:
    """The database's clock: schedulers and the API share one clock."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


async def workflow_exists(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval(_WORKFLOW_EXISTS, workflow_id, org_id))


async def lock_workflow(conn: Conn, org_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    return await conn.fetchval(_LOCK_WORKFLOW, workflow_id, org_id) is not None


async def lock_default(
    conn: Conn, org_id: uuid.UUID, workflow_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_LOCK_DEFAULT, workflow_id, org_id)
    return row


async def insert_default(
    conn: Conn,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    schedule_id: uuid.UUID,
    values: dict[str, Any],
) -> None:
    await conn.execute(
        _INSERT_DEFAULT,
        schedule_id,
        org_id,
        workflow_id,
        values["cron"],
        values["timezone"],
        values["enabled"],
        values["input"],
        values["next_run_at"],
    )


async def update(
    conn: Conn,
    org_id: uuid.UUID,
    schedule_id: uuid.UUID,
    values: dict[str, Any],
    *,
    reset_failures: bool,
) -> None:
    await conn.execute(
        _UPDATE,
        schedule_id,
        org_id,
        values["cron"],
        values["timezone"],
        values["enabled"],
        values["input"],
        values["next_run_at"],
        reset_failures,
    )


async def read(
    conn: Conn | Pool, org_id: uuid.UUID, schedule_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_READ, schedule_id, org_id)
    return row


async def read_default(
    pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_READ_DEFAULT, workflow_id, org_id)
    return row


async def delete_default(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    status: str = await pool.execute(_DELETE_DEFAULT, workflow_id, org_id)
    return status != "DELETE 0"


async def list_page(
    pool: Pool,
    org_id: uuid.UUID,
    *,
    workflow_id: uuid.UUID | None,
    enabled: bool | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, last_id = after if after else (None, None)
    return await pool.fetch(_LIST, org_id, workflow_id, enabled, created, last_id, limit)
