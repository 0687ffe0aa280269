"""Executor scaling, shared by tests/deploy/test_scaling.py and bench/scaling.py.

Runs whose single step is an ``http_request`` to a local aiohttp server that answers
after :data:`DELAY_S`, queued in bulk; executor replicas as processes; each replica's
share read back from ``workflow_runs.executor_id`` (``host:pid:random``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from nats.js import JetStreamContext

from flowcron.embedded import free_port
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.models.messages import RunMessage
from shared.outbox import dispatch

DELAY_S = 0.05


@asynccontextmanager
async def slow_server(delay_s: float = DELAY_S) -> AsyncIterator[str]:
    """A local HTTP server answering every request after ``delay_s``; its URL."""

    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)  # the remote call's latency being simulated
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/work", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/work"
    finally:
        await runner.cleanup()


def http_graph(url: str) -> dict[str, Any]:
    return {
        "name": "scaling",
        "nodes": [
            {"id": "start", "type": "trigger"},
            {"id": "call", "type": "action", "action": "http_request", "config": {"url": url}},
        ],
        "edges": [{"from": "start", "to": "call"}],
    }


async def create_workflow(pool: Pool, org_id: uuid.UUID, graph: dict[str, Any]) -> uuid.UUID:
    workflow_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, $3, $4)",
            workflow_id,
            org_id,
            graph["name"],
            graph,
        )
        await conn.execute(
            "INSERT INTO workflow_versions (workflow_id, version, org_id, graph)"
            " VALUES ($1, 1, $2, $3)",
            workflow_id,
            org_id,
            graph,
        )
    return workflow_id


async def queue_runs(
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    count: int,
) -> list[uuid.UUID]:
    """``count`` manual runs: rows written, then published (the outbox path)."""
    rows = await pool.fetch(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger,
                                      status, input)
           SELECT gen_random_uuid(), $1, $2, 1, 'manual', 'queued', '{}'::jsonb
           FROM generate_series(1, $3)
           RETURNING id""",
        org_id,
        workflow_id,
        count,
    )
    messages = [
        RunMessage(
            run_id=row["id"],
            org_id=org_id,
            workflow_id=workflow_id,
            workflow_version=1,
            trigger="manual",
        )
        for row in rows
    ]
    published = await dispatch(pool, js, topology, messages)
    assert len(published) == count
    return [m.run_id for m in messages]


async def status_counts(pool: Pool, workflow_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM workflow_runs WHERE workflow_id = $1 GROUP BY status",
        workflow_id,
    )
    return {row["status"]: row["n"] for row in rows}


async def shares_by_pid(pool: Pool, workflow_id: uuid.UUID) -> dict[int, int]:
    """Succeeded runs per executor process id (from ``executor_id`` = host:pid:random)."""
    rows = await pool.fetch(
        """SELECT executor_id, count(*) AS n FROM workflow_runs
           WHERE workflow_id = $1 AND status = 'succeeded' GROUP BY executor_id""",
        workflow_id,
    )
    shares: dict[int, int] = {}
    for row in rows:
        pid = int(row["executor_id"].split(":")[-2])
        shares[pid] = shares.get(pid, 0) + row["n"]
    return shares


async def pulling(js: JetStreamContext, topology: Topology, replicas: int) -> bool:
    """At least ``replicas`` pull requests wait on the consumer: every replica is up."""
    info = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
    return (info.num_waiting or 0) >= replicas
