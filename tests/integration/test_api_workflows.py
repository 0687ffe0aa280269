"""Workflows through the HTTP API: CRUD, versions, and located validation errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import (
    GRAPH,
    Client,
    api_client,
    assert_problem,
    create_workflow,
    graph,
)


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def test_crud_round_trip_bumps_versions(api: Client, org: Org, pool: Pool) -> None:
    created = await create_workflow(api, org, description="watch", max_concurrency=2)
    assert created["version"] == 1
    assert created["graph"]["edges"][0] == {"from": "start", "to": "fetch"}
    assert created["created_at"].endswith("Z")
    wid = created["id"]

    got = await (await api.get(f"/api/workflows/{wid}", headers=org.headers)).json()
    assert got == created

    # PATCH without a graph change keeps the version.
    resp = await api.patch(f"/api/workflows/{wid}", json={"name": "renamed"}, headers=org.headers)
    assert resp.status == 200
    patched = await resp.json()
    assert (patched["name"], patched["version"], patched["description"]) == ("renamed", 1, "watch")

    # PATCH with a new graph bumps it; max_concurrency may be cleared with null.
    changed = graph()
    changed["nodes"][3]["config"]["message"] = "changed"
    resp = await api.patch(
        f"/api/workflows/{wid}",
        json={"graph": changed, "max_concurrency": None},
        headers=org.headers,
    )
    patched = await resp.json()
    assert (patched["version"], patched["max_concurrency"]) == (2, None)

    # PUT replaces everything; the same graph again does not bump.
    resp = await api.put(
        f"/api/workflows/{wid}", json={"name": "replaced", "graph": changed}, headers=org.headers
    )
    replaced = await resp.json()
    assert (replaced["name"], replaced["description"], replaced["version"]) == ("replaced", "", 2)

    versions = await pool.fetch(
        "SELECT version, graph FROM workflow_versions WHERE workflow_id = $1 ORDER BY version",
        uuid.UUID(wid),
    )
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["graph"]["nodes"][3]["config"]["message"] == "changed"
    listed = await (await api.get(f"/api/workflows/{wid}/versions", headers=org.headers)).json()
    assert [v["version"] for v in listed["items"]] == [1, 2]

    resp = await api.delete(f"/api/workflows/{wid}", headers=org.headers)
    assert resp.status == 204
    await assert_problem(await api.get(f"/api/workflows/{wid}", headers=org.headers), 404)
    assert await pool.fetchval("SELECT count(*) FROM workflow_versions") == 0


async def test_delete_refuses_while_a_run_is_running(api: Client, org: Org, pool: Pool) -> None:
    wid = uuid.UUID((await create_workflow(api, org))["id"])
    await pool.execute(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger, status)
           VALUES ($1, $2, $3, 1, 'manual', 'running')""",
        uuid.uuid4(),
        org.id,
        wid,
    )
    body = await assert_problem(await api.delete(f"/api/workflows/{wid}", headers=org.headers), 409)
    assert "running" in body["detail"]


async def test_list_paginates_newest_first_and_filters_by_name(api: Client, org: Org) -> None:
    ids = [(await create_workflow(api, org, name=f"job {i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get("/api/workflows", params=params, headers=org.headers)).json()
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    resp = await api.get("/api/workflows", params={"q": "JOB 3"}, headers=org.headers)
    page = await resp.json()
    assert [w["name"] for w in page["items"]] == ["job 3"]

    body = await assert_problem(
        await api.get("/api/workflows", params={"limit": "0"}, headers=org.headers), 422
    )
    assert body["errors"][0]["field"] == "limit"
    body = await assert_problem(
        await api.get("/api/workflows", params={"cursor": "nope"}, headers=org.headers), 422
    )
    assert body["errors"][0]["field"] == "cursor"


def _graph_with(**changes: Any) -> dict[str, Any]:
    built = graph()
    built.update(changes)
    return built


async def _graph_error_fields(api: Client, org: Org, bad: Any) -> list[str]:
    resp = await api.post("/api/workflows", json={"name": "x", "graph": bad}, headers=org.headers)
    body = await assert_problem(resp, 422)
    return [e["field"] for e in body["errors"]]


async def test_graph_errors_are_located(api: Client, org: Org) -> None:
    unknown = _graph_with(edges=[{"from": "start", "to": "fetch"}, {"from": "fetch", "to": "zz"}])
    assert await _graph_error_fields(api, org, unknown) == ["graph.edges[1].to"]

    branch = _graph_with(
        edges=[
            {"from": "start", "to": "fetch"},
            {"from": "fetch", "to": "log", "branch": "true"},
        ]
    )
    assert await _graph_error_fields(api, org, branch) == ["graph.edges[1].branch"]

    cycle = _graph_with(
        edges=[
            {"from": "start", "to": "fetch"},
            {"from": "fetch", "to": "ok"},
            {"from": "ok", "to": "log", "branch": "true"},
            {"from": "log", "to": "fetch"},
        ]
    )
    assert await _graph_error_fields(api, org, cycle) == ["graph.edges"]

    bad_action = graph()
    bad_action["nodes"][1]["action"] = "teleport"
    assert await _graph_error_fields(api, org, bad_action) == ["graph.nodes[1].action"]


async def test_bad_requests_are_problems(api: Client, org: Org) -> None:
    headers = {**org.headers, "Content-Type": "application/json"}
    resp = await api.post("/api/workflows", data="{nope", headers=headers)
    body = await assert_problem(resp, 400)
    assert "malformed JSON" in body["detail"]

    resp = await api.post(
        "/api/workflows", json={"name": "x", "graph": GRAPH, "colour": "red"}, headers=org.headers
    )
    body = await assert_problem(resp, 422)
    assert body["errors"] == [{"field": "colour", "message": "unknown field"}]

    resp = await api.post("/api/workflows", json={"graph": GRAPH, "name": 5}, headers=org.headers)
    assert [e["field"] for e in (await assert_problem(resp, 422))["errors"]] == ["name"]

    resp = await api.patch("/api/workflows/not-a-uuid", json={}, headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "id"
    resp = await api.patch(
        f"/api/workflows/{uuid.uuid4()}", json={"name": None}, headers=org.headers
    )
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "name"
    resp = await api.get(f"/api/workflows/{uuid.uuid4()}", headers=org.headers)
    await assert_problem(resp, 404)

    await assert_problem(await api.get("/api/nowhere", headers=org.headers), 404)
    resp = await api.post("/healthz")
    assert "GET" in (await assert_problem(resp, 405))["detail"]
