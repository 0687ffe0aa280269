"""SQL for workflows and their versions. Every statement filters by ``org_id``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from shared.db.pool import Pool

COLUMNS = "id, name, description, graph, version, max_concurrency, created_at, updated_at"

_INSERT = f"""
INSERT INTO workflows (id, org_id, name, description, graph, max_concurrency)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {COLUMNS}
"""
_INSERT_VERSION = """
INSERT INTO workflow_versions (workflow_id, version, org_id, graph) VALUES ($1, $2, $3, $4)
"""
_GET = f"SELECT {COLUMNS} FROM workflows WHERE id = $1 AND org_id = $2"
# NO KEY UPDATE: serialises writers of one workflow without blocking run inserts,
# whose foreign key only takes KEY SHARE.
_LOCK = f"{_GET} FOR NO KEY UPDATE"
_UPDATE = f"""
UPDATE workflows
SET name = $3, description = $4, graph = $5, max_concurrency = $6, version = $7,
    updated_at = now()
WHERE id = $1 AND org_id = $2
RETURNING {COLUMNS}
"""
_LIST = f"""
SELECT {COLUMNS} FROM workflows
WHERE org_id = $1
  AND ($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5
"""
_ACTIVE_RUNS = """
SELECT count(*) FROM workflow_runs
WHERE workflow_id = $1 AND org_id = $2 AND status = 'running'
"""
_DELETE = "DELETE FROM workflows WHERE id = $1 AND org_id = $2"


async def create(
    pool: Pool,
    org_id: uuid.UUID,
    *,
    name: str,
    description: str,
    graph: dict[str, Any],
    max_concurrency: int | None,
) -> asyncpg.Record:
    """Insert a workflow at version 1 with its first ``workflow_versions`` row."""
    workflow_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        row: asyncpg.Record | None = await conn.fetchrow(
            _INSERT, workflow_id, org_id, name, description, graph, max_concurrency
        )
        await conn.execute(_INSERT_VERSION, workflow_id, 1, org_id, graph)
    assert row is not None  # INSERT … RETURNING returns the row
    return row


async def get(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_GET, workflow_id, org_id)
    return row


async def update(
    pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Apply ``changes`` (any of name, description, graph, max_concurrency).

    A graph different from the stored one bumps ``version`` and records the new
    version; None is returned when the workflow does not exist in the organization.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(_LOCK, workflow_id, org_id)
        if current is None:
            return None
        merged = {**dict(current), **changes}
        version: int = current["version"]
        if merged["graph"] != current["graph"]:
            version += 1
            await conn.execute(_INSERT_VERSION, workflow_id, version, org_id, merged["graph"])
        row: asyncpg.Record | None = await conn.fetchrow(
            _UPDATE,
            workflow_id,
            org_id,
            merged["name"],
            merged["description"],
            merged["graph"],
            merged["max_concurrency"],
            version,
        )
    return row


async def list_page(
    pool: Pool,
    org_id: uuid.UUID,
    *,
    q: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` workflows, newest first, after the ``(created_at, id)`` cursor."""
    created, last_id = after if after else (None, None)
    return await pool.fetch(_LIST, org_id, q, created, last_id, limit)


async def delete(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> str:
    """Delete a workflow and (by cascade) its schedules, runs, steps and logs.

    Returns ``"deleted"``, ``"missing"``, or ``"busy"`` when a run is running.
    """
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchrow(_LOCK, workflow_id, org_id) is None:
            return "missing"
        if await conn.fetchval(_ACTIVE_RUNS, workflow_id, org_id):
            return "busy"
        await conn.execute(_DELETE, workflow_id, org_id)
    return "deleted"


async def versions(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT version, graph, created_at FROM workflow_versions
           WHERE workflow_id = $1 AND org_id = $2 ORDER BY version""",
        workflow_id,
        org_id,
    )
