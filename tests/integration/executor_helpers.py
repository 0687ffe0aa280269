"""Helpers for executor tests: rows written with SQL, an in-process executor, and a
local HTTP server that counts what it receives."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from nats.js import JetStreamContext

from services.executor.app import Executor
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage
from shared.outbox import dispatch
from shared.settings import Settings
from tests.waiting import wait_for

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


async def create_workflow(pool: Pool, org_id: uuid.UUID, graph: dict[str, Any]) -> uuid.UUID:
    workflow_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, $3, $4)",
        workflow_id,
        org_id,
        graph.get("name", "test"),
        graph,
    )
    await pool.execute(
        "INSERT INTO workflow_versions (workflow_id, version, org_id, graph)"
        " VALUES ($1, 1, $2, $3)",
        workflow_id,
        org_id,
        graph,
    )
    return workflow_id


async def create_schedule(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID) -> uuid.UUID:
    schedule_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, consecutive_failures)"
        " VALUES ($1, $2, $3, '* * * * *', 2)",
        schedule_id,
        org_id,
        workflow_id,
    )
    return schedule_id


async def create_run(
    pool: Pool,
    org_id: uuid.UUID,
    workflow_id: uuid.UUID,
    *,
    run_input: dict[str, Any] | None = None,
    schedule_id: uuid.UUID | None = None,
    status: str = "queued",
    attempt: int = 0,
) -> RunMessage:
    run_id = uuid.uuid4()
    scheduled_for = datetime.now(UTC) if schedule_id else None
    await pool.execute(
        "INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, schedule_id,"
        " trigger, scheduled_for, status, attempt, input)"
        " VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9)",
        run_id,
        org_id,
        workflow_id,
        schedule_id,
        "schedule" if schedule_id else "manual",
        scheduled_for,
        status,
        attempt,
        run_input or {},
    )
    return RunMessage(
        run_id=run_id,
        org_id=org_id,
        workflow_id=workflow_id,
        workflow_version=1,
        trigger="schedule" if schedule_id else "manual",
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
    )


async def publish(
    pool: Pool, js: JetStreamContext, topology: Topology, message: RunMessage
) -> None:
    assert await dispatch(pool, js, topology, [message]) == [message.run_id]


async def publish_duplicate(js: JetStreamContext, topology: Topology, message: RunMessage) -> None:
    """The same run again under another Nats-Msg-Id (e.g. republished after the window)."""
    await js.publish(
        topology.run_subject(message.org_id, message.workflow_id),
        message.to_bytes(),
        stream=topology.runs_stream,
        headers={"Nats-Msg-Id": f"{message.run_id}-again-{uuid.uuid4().hex[:4]}"},
    )


async def wait_for_status(
    pool: Pool, run_id: uuid.UUID, statuses: tuple[str, ...] = TERMINAL, timeout: float = 15
) -> Any:
    async def probe() -> Any:
        row = await pool.fetchrow("SELECT * FROM workflow_runs WHERE id = $1", run_id)
        return row if row is not None and row["status"] in statuses else None

    return await wait_for(probe, timeout=timeout, message=f"run {run_id} in {statuses}")


async def steps_of(pool: Pool, run_id: uuid.UUID) -> dict[str, Any]:
    rows = await pool.fetch("SELECT * FROM run_steps WHERE run_id = $1", run_id)
    return {r["node_id"]: r for r in rows}


@asynccontextmanager
async def running_executor(
    settings: Settings, pool: Pool, js: JetStreamContext, **overrides: Any
) -> AsyncIterator[Executor]:
    """An executor consuming in the background until the block ends (then drained)."""
    if overrides:
        settings = settings.model_copy(update=overrides)
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        # The JetStream context's own connection carries core NATS (events, control).
        executor = Executor(settings, pool, js, http, nc=js._nc)
        task = asyncio.create_task(executor.run(stop))
        try:
            yield executor
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=settings.executor_drain_s + 10)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Remote:
    """A local HTTP server; ``hits[path]`` counts requests, ``requests`` keeps them."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.app = web.Application()
        self.base_url = ""

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.hits[path] += 1
            body = await request.json() if request.can_read_body else None
            self.requests.append((path, dict(request.headers), body))
            return await handler(request)

        self.app.router.add_route(method, path, counted)


@asynccontextmanager
async def serving(remote: Remote) -> AsyncIterator[Remote]:
    server = TestServer(remote.app, host="127.0.0.1")
    await server.start_server()
    remote.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield remote
    finally:
        await server.close()
