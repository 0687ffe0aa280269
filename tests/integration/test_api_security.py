"""Organization isolation on every route, API keys and roles, bounded request bodies."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nats.js import JetStreamContext

from services.api.auth import OPEN_PATHS
from services.api.openapi import routes_of
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem, create_workflow, graph

NOW = "2026-01-01T00:00:00Z"
# A body that passes validation, so the request reaches the organization check.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/workflows"): {"name": "mine", "graph": graph()},
    ("PUT", "/api/workflows/{id}"): {"name": "stolen", "graph": graph()},
    ("PATCH", "/api/workflows/{id}"): {"name": "stolen"},
    ("POST", "/api/workflows/{id}/schedule"): {"cron": "* * * * *"},
    ("PATCH", "/api/workflows/{id}/schedule"): {"enabled": False},
    ("POST", "/api/workflows/{id}/schedules"): {"cron": "* * * * *"},
    ("PATCH", "/api/schedules/{id}"): {"enabled": False},
    ("POST", "/api/schedules/{id}/backfill"): {"start": NOW, "end": "2026-01-01T03:00:00Z"},
    ("POST", "/api/utils/validate-cron"): {"expression": "* * * * *"},
    ("POST", "/api/admin/queues/{name}"): {"action": "retry", "filter": {}},
    ("POST", "/api/secrets"): {"name": "B_TOKEN", "value": "b"},
}
STREAMS = {"/api/events"}  # open-ended: covered by test_api_events


async def _org_a_objects(
    api: Client, org: Org, js: JetStreamContext, topology: Topology
) -> dict[str, str]:
    workflow = await create_workflow(api, org)
    wid = workflow["id"]
    resp = await api.post(
        f"/api/workflows/{wid}/schedule", json={"cron": "0 * * * *"}, headers=org.headers
    )
    assert resp.status == 201, await resp.text()
    schedule = await resp.json()
    resp = await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)
    run = await resp.json()
    resp = await api.post("/api/keys", json={"name": "a"}, headers=org.headers)
    key = await resp.json()
    message = RunMessage(
        run_id=run["id"], org_id=org.id, workflow_id=wid, workflow_version=1, trigger="manual"
    )
    await js.publish(
        topology.dlq_subject(org.id, wid),
        message.to_bytes(),
        headers={"Flowcron-Error": "boom"},
    )
    resp = await api.post(
        "/api/secrets", json={"name": "A_ONLY_TOKEN", "value": "s3cret"}, headers=org.headers
    )
    assert resp.status == 201, await resp.text()
    return {
        "workflow": wid,
        "schedule": schedule["id"],
        "run": run["id"],
        "key": key["id"],
        "secret": "A_ONLY_TOKEN",
    }


def _path_for(path: str, ids: dict[str, str]) -> str:
    for prefix, kind in (
        ("/api/workflows/", "workflow"),
        ("/api/schedules/", "schedule"),
        ("/api/runs/", "run"),
        ("/api/keys/", "key"),
    ):
        if path.startswith("/api/secrets/"):
            return path.replace("{name}", ids["secret"])
        if path.startswith(prefix):
            return path.replace("{id}", ids[kind])
    return path.replace("{name}", "dlq")


async def test_every_route_keeps_other_organizations_out(
    api: Client, org: Org, other_org: Org, pool: Pool, js: JetStreamContext, topology: Topology
) -> None:
    ids = await _org_a_objects(api, org, js, topology)
    assert api.app is not None
    walked = 0
    for method, template in routes_of(api.app):
        if template in OPEN_PATHS or template in STREAMS:
            continue
        url = _path_for(template, ids)
        body = BODIES.get((method, template))
        resp = await api.request(method, url, json=body, headers=other_org.headers)
        text = await resp.text()
        where = f"{method} {url} -> {resp.status}: {text[:300]}"
        if "{" in template:
            assert resp.status == 404 or template.startswith("/api/admin/queues"), where
        else:
            assert resp.status < 300, where
        for kind, value in ids.items():
            assert value not in text, f"{kind} of another organization leaked: {where}"
        walked += 1
    assert walked >= 35
    # And nothing of the first organization was changed by those calls.
    row = await pool.fetchrow(
        "SELECT name, version FROM workflows WHERE id = $1", uuid.UUID(ids["workflow"])
    )
    assert row is not None and row["name"] == "monitor"
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE id = $1", uuid.UUID(ids["run"]))
        == "queued"
    )
    assert (
        await pool.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", uuid.UUID(ids["key"]))
        is None
    )
    assert await pool.fetchval("SELECT count(*) FROM secrets WHERE org_id = $1", org.id) == 1
    dlq = await js.stream_info(topology.dlq_stream)
    assert dlq.state.messages == 1


async def test_keys_are_shown_once_listed_and_revoked_at_once(api: Client, org: Org) -> None:
    resp = await api.post("/api/keys", json={"name": "ci", "role": "member"}, headers=org.headers)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["key"].startswith("fc_") and created["role"] == "member"
    assert created["key"].startswith(created["prefix"])
    new = {"Authorization": f"Bearer {created['key']}"}
    assert (await api.get("/api/workflows", headers=new)).status == 200

    listed = await (await api.get("/api/keys", headers=org.headers)).json()
    mine = [k for k in listed["items"] if k["id"] == created["id"]]
    assert mine and "key" not in mine[0] and mine[0]["last_used_at"] is not None
    assert created["key"] not in json.dumps(listed)

    resp = await api.delete(f"/api/keys/{created['id']}", headers=org.headers)
    assert resp.status == 204
    await assert_problem(await api.get("/api/workflows", headers=new), 401)
    assert (await api.delete(f"/api/keys/{created['id']}", headers=org.headers)).status == 204
    await assert_problem(await api.delete(f"/api/keys/{uuid.uuid4()}", headers=org.headers), 404)


async def test_members_cannot_manage_keys_or_queues(api: Client, member: Org) -> None:
    assert (await api.get("/api/workflows", headers=member.headers)).status == 200
    for method, path, body in (
        ("POST", "/api/keys", {"role": "admin"}),
        ("GET", "/api/keys", None),
        ("DELETE", f"/api/keys/{uuid.uuid4()}", None),
        ("GET", "/api/admin/queues", None),
        ("GET", "/api/admin/queues/dlq", None),
        ("POST", "/api/admin/queues/dlq", {"action": "remove", "filter": {}}),
    ):
        resp = await api.request(method, path, json=body, headers=member.headers)
        problem = await assert_problem(resp, 403)
        assert "admin" in problem["detail"]


async def test_bodies_are_bounded(api: Client, org: Org) -> None:
    too_big = {"name": "x", "description": "y" * 2_000_000, "graph": graph()}
    await assert_problem(await api.post("/api/workflows", json=too_big, headers=org.headers), 413)

    long_string: dict[str, Any] = {"name": "x", "graph": graph()}
    long_string["graph"]["nodes"][3]["config"]["message"] = "z" * 70_000
    problem = await assert_problem(
        await api.post("/api/workflows", json=long_string, headers=org.headers), 422
    )
    assert problem["errors"][0]["field"] == "graph.nodes[3].config.message"
    assert "longer than" in problem["errors"][0]["message"]

    nested: Any = "leaf"
    for _ in range(100):
        nested = {"a": nested}
    problem = await assert_problem(
        await api.post("/api/workflows/x/runs", json={"input": nested}, headers=org.headers), 422
    )
    wid = (await create_workflow(api, org))["id"]
    problem = await assert_problem(
        await api.post(f"/api/workflows/{wid}/runs", json={"input": nested}, headers=org.headers),
        422,
    )
    assert "nested deeper" in problem["errors"][0]["message"]
