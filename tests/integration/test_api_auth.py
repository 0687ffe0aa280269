"""Authentication, organization isolation, health, readiness and the error catch-alls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from flowcron.embedded import free_port
from services.api.app import create_app, serve
from services.api.keys import NATS
from shared.apikeys import create_key, ensure_organization
from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import (
    Client,
    api_client,
    assert_problem,
    create_workflow,
)
from tests.waiting import wait_for


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def test_missing_bad_and_revoked_keys_are_401(api: Client, org: Org, pool: Pool) -> None:
    body = await assert_problem(await api.get("/api/workflows"), 401)
    assert "Authorization" in body["detail"]
    resp = await api.get("/api/workflows", headers={"Authorization": "Bearer fc_nope"})
    await assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await api.get("/api/workflows", headers={"Authorization": f"Basic {org.api_key}"})
    await assert_problem(resp, 401)

    assert (await api.get("/api/workflows", headers=org.headers)).status == 200
    # Revoked by plain SQL while the API has the key cached: the trigger's NOTIFY drops
    # it within milliseconds (bounded here at half a second).
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE org_id = $1", org.id)
    await wait_for(
        lambda: _status(api, "/api/workflows", org),
        timeout=0.5,
        interval=0.01,
        message="the revoked key to be refused",
    )
    await assert_problem(await api.get("/api/workflows", headers=org.headers), 401)


async def _status(api: Client, path: str, org: Org) -> bool:
    return (await api.get(path, headers=org.headers)).status == 401


async def test_a_key_revoked_through_one_replica_fails_on_another(
    api: Client, settings: Settings, org: Org, pool: Pool
) -> None:
    """Two API processes' worth of caches: revoking through one drops the key from both."""
    async with pool.acquire() as conn:
        victim = Org(org.id, (await create_key(conn, org.id, name="victim")).key)
    async with api_client(settings) as other:
        for replica in (api, other):  # both cache the key
            for _ in range(3):
                assert (await replica.get("/api/schedules", headers=victim.headers)).status == 200
        victim_id = await pool.fetchval(
            "SELECT id FROM api_keys WHERE org_id = $1 AND name = 'victim'", org.id
        )
        resp = await api.delete(f"/api/keys/{victim_id}", headers=org.headers)
        assert resp.status == 204
        await assert_problem(await api.get("/api/schedules", headers=victim.headers), 401)
        await wait_for(
            lambda: _status(other, "/api/schedules", victim),
            timeout=0.5,
            interval=0.01,
            message="the other replica to refuse the revoked key",
        )
        # The organization's other key was dropped from the caches too, and still works.
        assert (await other.get("/api/schedules", headers=org.headers)).status == 200


async def test_key_use_is_recorded(api: Client, org: Org, pool: Pool) -> None:
    assert (await api.get("/api/schedules", headers=org.headers)).status == 200
    used = await pool.fetchval("SELECT last_used_at FROM api_keys WHERE org_id = $1", org.id)
    assert used is not None


async def test_another_organizations_objects_are_404(api: Client, org: Org, pool: Pool) -> None:
    async with pool.acquire() as conn:
        other_id = await ensure_organization(conn, "someone-else")
        other = Org(other_id, (await create_key(conn, other_id)).key)
    theirs = await create_workflow(api, other, name="theirs")
    wid = theirs["id"]
    for method, path in [
        ("GET", f"/api/workflows/{wid}"),
        ("PATCH", f"/api/workflows/{wid}"),
        ("DELETE", f"/api/workflows/{wid}"),
        ("GET", f"/api/workflows/{wid}/schedule"),
        ("POST", f"/api/workflows/{wid}/runs"),
    ]:
        resp = await api.request(method, path, json={}, headers=org.headers)
        await assert_problem(resp, 404)
    listed = await (await api.get("/api/workflows", headers=org.headers)).json()
    assert listed["items"] == []
    assert (await api.get(f"/api/workflows/{wid}", headers=other.headers)).status == 200


async def test_health_and_readiness(api: Client) -> None:
    resp = await api.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    resp = await api.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"postgres": "ok", "nats": "ok"}

    await api.app[NATS].close()
    body = await assert_problem(await api.get("/readyz"), 503)
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["nats"] != "ok"
    assert "nats" in body["detail"]


async def test_unexpected_errors_are_logged_500_problems(
    settings: Settings, org: Org, js: JetStreamContext
) -> None:
    """Only a bug gives a 500; its detail hides the exception, the log has the traceback."""

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom")

    app = create_app(settings)
    app.router.add_get("/api/boom", boom)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as logs:
            resp = await client.get("/api/boom", headers=org.headers)
        body = await assert_problem(resp, 500)
    assert "kaboom" not in body["detail"]
    errors = [e for e in logs if e["event"] == "unhandled error"]
    assert errors and errors[0]["exc_info"] is True and errors[0]["path"] == "/api/boom"


async def test_bodies_postgres_cannot_store_are_located_422s(api: Client, org: Org) -> None:
    node = {"id": "s", "type": "trigger", "config": {"note": "a\u0000b"}}
    body = {"name": "x", "graph": {"nodes": [node]}}
    problem = await assert_problem(
        await api.post("/api/workflows", json=body, headers=org.headers), 422
    )
    assert problem["errors"][0]["field"] == "graph.nodes[0].config.note"
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(100):
        cursor["a"] = cursor = {}
    resp = await api.post(
        "/api/workflows/00000000-0000-0000-0000-000000000000/runs",
        json={"input": deep},
        headers=org.headers,
    )
    await assert_problem(resp, 422)


async def test_serve_listens_until_stopped(settings: Settings, js: JetStreamContext) -> None:
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings.model_copy(update={"api_port": port}), stop))
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(healthy, message="the API to listen")
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_two_api_processes_share_a_port_with_reuse_port(
    settings: Settings, js: JetStreamContext
) -> None:
    """FLOWCRON_API_REUSE_PORT: a second API on the same port starts instead of failing
    with 'address in use', and the port answers while either runs."""
    port = free_port()
    shared = settings.model_copy(update={"api_port": port, "api_reuse_port": True})
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(serve(shared, stop)) for stop in stops]
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(healthy, message="the APIs to listen")
        assert not any(task.done() for task in tasks)  # neither failed to bind
        stops[0].set()
        await asyncio.wait_for(tasks[0], timeout=10)
        await wait_for(healthy, message="the other API to answer alone")
    stops[1].set()
    await asyncio.wait_for(tasks[1], timeout=10)
