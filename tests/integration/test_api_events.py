"""Live events as Server-Sent Events, from <NS>_EVENTS, confined to the organization."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import ClientResponse, ClientTimeout
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from flowcron.embedded import free_port
from services.api.app import serve
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem, create_workflow
from tests.waiting import wait_for

TIMEOUT = ClientTimeout(total=10)  # a stream that never sends fails the test, not hangs


async def _publish(
    js: JetStreamContext, topology: Topology, run_id: str, kind: str, org: Any
) -> None:
    body = {"run_id": run_id, "org_id": str(org), "workflow_id": "w", "status": "running"}
    await js.publish(topology.event_subject(run_id, kind), json.dumps(body).encode())


async def _next_event(resp: ClientResponse) -> tuple[str, dict[str, Any]]:
    """The next SSE message (pings skipped): (event, data)."""
    event, data = "", ""
    while True:
        line = (await resp.content.readline()).decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif line == "" and data:
            return event, json.loads(data)


async def test_a_runs_events_then_the_stream_ends(
    api: Client, org: Org, js: JetStreamContext, topology: Topology, other_org: Org
) -> None:
    wid = (await create_workflow(api, org))["id"]
    run = await (await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)).json()
    run_id = run["id"]
    await _publish(js, topology, run_id, "run.started", org.id)
    await _publish(js, topology, run_id, "step.started", other_org.id)  # not this org's
    await assert_problem(
        await api.get(f"/api/runs/{run_id}/events", headers=other_org.headers), 404
    )

    resp = await api.get(f"/api/runs/{run_id}/events", headers=org.headers, timeout=TIMEOUT)
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert await _next_event(resp) == ("run.started", {**_body(run_id, org)})
    await _publish(js, topology, run_id, "run.finished", org.id)
    kind, _ = await _next_event(resp)
    assert kind == "run.finished"
    assert await resp.content.read() == b""  # the server ended the stream


def _body(run_id: str, org: Org) -> dict[str, Any]:
    return {"run_id": run_id, "org_id": str(org.id), "workflow_id": "w", "status": "running"}


async def test_an_ended_runs_stream_answers_how_it_ended(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org))["id"]
    run = await (await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)).json()
    await api.post(f"/api/runs/{run['id']}/cancel", headers=org.headers)
    resp = await api.get(f"/api/runs/{run['id']}/events", headers=org.headers, timeout=TIMEOUT)
    kind, body = await _next_event(resp)
    assert (kind, body["status"]) == ("run.finished", "cancelled")
    assert await resp.content.read() == b""


async def test_the_organizations_events(
    api: Client, org: Org, other_org: Org, js: JetStreamContext, topology: Topology
) -> None:
    resp = await api.get("/api/events", headers=org.headers, timeout=TIMEOUT)
    assert resp.status == 200
    await _publish(js, topology, "r-other", "run.started", other_org.id)
    await _publish(js, topology, "r-mine", "run.started", org.id)
    kind, body = await _next_event(resp)
    assert (kind, body["run_id"]) == ("run.started", "r-mine")
    resp.close()


async def test_streams_end_when_clients_leave_and_when_the_api_stops(
    settings: Settings, js: JetStreamContext, org: Org, topology: Topology
) -> None:
    """The served API (``serve``): a stream whose client went away ends at once, without
    an error, and a stream still open does not hold the shutdown."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings.model_copy(update={"api_port": port}), stop))
    base = f"http://127.0.0.1:{port}"
    with capture_logs() as logs:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:

            async def healthy() -> bool:
                try:
                    async with session.get(f"{base}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(healthy, message="the API to listen")
            leaving = await session.get(f"{base}/api/events", headers=org.headers)
            assert leaving.status == 200
            leaving.close()  # the client goes away before any event
            staying = await session.get(f"{base}/api/events", headers=org.headers)
            assert staying.status == 200
            await _publish(js, topology, "r-1", "run.started", org.id)
            assert (await _next_event(staying))[1]["run_id"] == "r-1"

            started = time.monotonic()
            stop.set()
            await asyncio.wait_for(task, timeout=10)
            assert time.monotonic() - started < 5  # not aiohttp's 60 s grace period
            assert await staying.content.read() == b""  # the open stream was ended
    assert not [e for e in logs if e["log_level"] == "error"], logs
