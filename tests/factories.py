"""Rows for tests, written with plain SQL (the API has its own tests)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.db.pool import Pool

TRIVIAL_GRAPH: dict[str, Any] = {
    "name": "trivial",
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "say", "type": "action", "action": "log_message", "config": {"message": "hi"}},
    ],
    "edges": [{"from": "start", "to": "say"}],
}


async def create_workflow(
    pool: Pool, org_id: uuid.UUID, graph: dict[str, Any] | None = None
) -> uuid.UUID:
    graph = graph or TRIVIAL_GRAPH
    workflow_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, $3, $4)",
            workflow_id,
            org_id,
            graph.get("name", "wf"),
            graph,
        )
        await conn.execute(
            """INSERT INTO workflow_versions (workflow_id, version, org_id, graph)
               VALUES ($1, 1, $2, $3)""",
            workflow_id,
            org_id,
            graph,
        )
    return workflow_id


async def create_schedule(
    pool: Pool,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    *,
    cron: str,
    next_run_at: datetime | None,
    timezone: str = "UTC",
    **columns: Any,
) -> uuid.UUID:
    schedule_id = uuid.uuid4()
    names = ["id", "org_id", "workflow_id", "cron", "timezone", "next_run_at", *columns]
    values = [schedule_id, org_id, workflow_id, cron, timezone, next_run_at, *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await pool.execute(
        f"INSERT INTO workflow_schedules ({', '.join(names)}) VALUES ({placeholders})", *values
    )
    return schedule_id
