"""SQL for schedules. Every statement filters by ``org_id``.

Writers of a workflow's default schedule run in one transaction that first locks the
workflow row, so two concurrent ``POST /schedule`` calls cannot both create one.
Column names in INSERT and UPDATE come from ``POLICY_DEFAULTS`` (a constant), never
from a request.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.api.queries import Conn
from services.api.schedule_schemas import POLICY_DEFAULTS
from shared.db.pool import Pool

WRITABLE = ("cron", "timezone", "next_run_at", *POLICY_DEFAULTS)

COLUMNS = """
s.id, s.org_id, s.workflow_id, w.name AS workflow_name, s.name, s.is_default, s.cron,
s.timezone, s.enabled, s.input, s.catchup_policy, s.catchup_window_s, s.max_catchup_runs,
s.catchup_interval_s, s.overlap_policy, s.jitter_s, s.start_at, s.end_at, s.max_runs,
s.auto_pause_after, s.consecutive_failures, s.paused_until, s.pause_note, s.next_run_at,
s.last_run_at, s.total_runs, s.successful_runs, s.failed_runs, s.created_at, s.updated_at
"""
_FROM = "FROM workflow_schedules s JOIN workflows w ON w.id = s.workflow_id"
_READ = f"SELECT {COLUMNS} {_FROM} WHERE s.id = $1 AND s.org_id = $2"
_LOCK = f"SELECT {COLUMNS} {_FROM} WHERE s.id = $1 AND s.org_id = $2 FOR UPDATE OF s"
_READ_DEFAULT = (
    f"SELECT {COLUMNS} {_FROM} WHERE s.workflow_id = $1 AND s.org_id = $2 AND s.is_default"
)
_LOCK_DEFAULT = f"{_READ_DEFAULT} FOR UPDATE OF s"
_LOCK_WORKFLOW = "SELECT id FROM workflows WHERE id = $1 AND org_id = $2 FOR NO KEY UPDATE"
_DELETE = "DELETE FROM workflow_schedules WHERE id = $1 AND org_id = $2"
_DELETE_DEFAULT = (
    "DELETE FROM workflow_schedules WHERE workflow_id = $1 AND org_id = $2 AND is_default"
)
_WORKFLOW_EXISTS = "SELECT EXISTS (SELECT 1 FROM workflows WHERE id = $1 AND org_id = $2)"
_LIST = f"""
SELECT {COLUMNS} {_FROM}
WHERE s.org_id = $1
  AND ($2::uuid IS NULL OR s.workflow_id = $2)
  AND ($3::boolean IS NULL OR s.enabled = $3)
  AND ($4::timestamptz IS NULL OR (s.created_at, s.id) < ($4, $5::uuid))
ORDER BY s.created_at DESC, s.id DESC
LIMIT $6
"""
# Decisions recorded by the scheduler, plus fires that simply created their run (the run
# is their record: see migration 0002), newest fire first.
_HISTORY = """
SELECT * FROM (
    SELECT 'd' || d.id AS key, d.fire_time, d.decision, d.run_id, d.reason, d.created_at
    FROM schedule_decisions d
    WHERE d.schedule_id = $1 AND d.org_id = $2
    UNION ALL
    SELECT 'r' || r.id, r.scheduled_for, 'created', r.id, '', r.created_at
    FROM workflow_runs r
    WHERE r.schedule_id = $1 AND r.org_id = $2 AND r.trigger = 'schedule'
      AND NOT EXISTS (SELECT 1 FROM schedule_decisions x WHERE x.run_id = r.id)
) h
WHERE $3::timestamptz IS NULL OR (h.fire_time, h.key) < ($3, $4::text)
ORDER BY h.fire_time DESC, h.key DESC
LIMIT $5
"""
_RECORD = """
INSERT INTO schedule_decisions (org_id, schedule_id, fire_time, decision, run_id, reason)
SELECT $1, $2, u.fire_time, $3, u.run_id, $4
FROM unnest($5::timestamptz[], $6::uuid[]) AS u(fire_time, run_id)
"""
_INSERT_RUNS = """
INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, schedule_id, trigger,
                           scheduled_for, input, release_at)
SELECT u.id, s.org_id, s.workflow_id, w.version, s.id, $3, u.scheduled_for, $4, u.release_at
FROM unnest($5::uuid[], $6::timestamptz[], $7::timestamptz[])
     AS u(id, scheduled_for, release_at)
JOIN workflow_schedules s ON s.id = $1 AND s.org_id = $2
JOIN workflows w ON w.id = s.workflow_id
ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
RETURNING id, org_id, workflow_id, workflow_version, trigger, schedule_id, scheduled_for,
          release_at
"""


async def db_now(conn: Conn | Pool) -> datetime:
    """The database's clock: schedulers and the API share one clock."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


async def workflow_exists(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval(_WORKFLOW_EXISTS, workflow_id, org_id))


async def lock_workflow(conn: Conn, org_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    return await conn.fetchval(_LOCK_WORKFLOW, workflow_id, org_id) is not None


async def lock(conn: Conn, org_id: uuid.UUID, schedule_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_LOCK, schedule_id, org_id)
    return row


async def lock_default(
    conn: Conn, org_id: uuid.UUID, workflow_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_LOCK_DEFAULT, workflow_id, org_id)
    return row


async def insert(
    conn: Conn,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    schedule_id: uuid.UUID,
    values: dict[str, Any],
    *,
    is_default: bool = False,
) -> None:
    names = [n for n in WRITABLE if n in values]
    placeholders = ", ".join(f"${i}" for i in range(5, 5 + len(names)))
    await conn.execute(
        f"""INSERT INTO workflow_schedules (id, org_id, workflow_id, is_default, {", ".join(names)})
            VALUES ($1, $2, $3, $4, {placeholders})""",
        schedule_id,
        org_id,
        workflow_id,
        is_default,
        *(values[n] for n in names),
    )


async def update(
    conn: Conn,
    org_id: uuid.UUID,
    schedule_id: uuid.UUID,
    values: dict[str, Any],
    *,
    reset_failures: bool,
) -> None:
    """Write ``values``; ``cron`` is always in the SET list, since the NOTIFY trigger
    fires on ``UPDATE OF cron, timezone, enabled…`` and must wake the schedulers."""
    names = [n for n in WRITABLE if n in values and n != "cron"]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=4))
    await conn.execute(
        f"""UPDATE workflow_schedules
            SET cron = $3, {sets},
                consecutive_failures = CASE WHEN ${len(names) + 4} THEN 0
                                            ELSE consecutive_failures END,
                updated_at = now()
            WHERE id = $1 AND org_id = $2""",
        schedule_id,
        org_id,
        values["cron"],
        *(values[n] for n in names),
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


async def delete(pool: Pool, org_id: uuid.UUID, schedule_id: uuid.UUID) -> bool:
    status: str = await pool.execute(_DELETE, schedule_id, org_id)
    return status != "DELETE 0"


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


async def history(
    pool: Pool,
    org_id: uuid.UUID,
    schedule_id: uuid.UUID,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    fire, key = before if before else (None, None)
    return await pool.fetch(_HISTORY, schedule_id, org_id, fire, key, limit)


async def insert_runs(
    conn: Conn,
    org_id: uuid.UUID,
    schedule_id: uuid.UUID,
    *,
    trigger: str,
    run_input: dict[str, Any],
    fires: list[datetime | None],
    releases: list[datetime | None],
) -> list[asyncpg.Record]:
    """Runs of the schedule for these fire times; a fire that has a run already is
    skipped (``UNIQUE (schedule_id, scheduled_for)``). A ``None`` fire time is a run
    outside the cron timetable (run now)."""
    ids = [uuid.uuid4() for _ in fires]
    return await conn.fetch(
        _INSERT_RUNS, schedule_id, org_id, trigger, run_input, ids, fires, releases
    )


async def record(
    conn: Conn,
    org_id: uuid.UUID,
    schedule_id: uuid.UUID,
    *,
    decision: str,
    reason: str,
    fires: list[datetime],
    run_ids: list[uuid.UUID | None],
) -> None:
    await conn.execute(_RECORD, org_id, schedule_id, decision, reason, fires, run_ids)
