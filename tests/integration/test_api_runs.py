"""Manual runs (outbox to ``<NS>_RUNS``, Idempotency-Key), run lists, steps and logs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import (
    Client,
    api_client,
    assert_problem,
    create_workflow,
)


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def _stream_count(js: JetStreamContext, topology: Topology) -> int:
    info = await js.stream_info(topology.runs_stream)
    return info.state.messages


async def test_manual_run_is_queued_and_published(
    api: Client, org: Org, js: JetStreamContext, topology: Topology
) -> None:
    workflow = await create_workflow(api, org)
    wid = workflow["id"]
    resp = await api.post(
        f"/api/workflows/{wid}/runs", json={"input": {"n": 1}}, headers=org.headers
    )
    assert resp.status == 201, await resp.text()
    run = await resp.json()
    assert resp.headers["Location"] == f"/api/runs/{run['id']}"
    assert (run["status"], run["trigger"], run["workflow_version"]) == ("queued", "manual", 1)
    assert run["input"] == {"n": 1} and run["published_at"] is not None

    assert await _stream_count(js, topology) == 1
    msg = await js.get_last_msg(topology.runs_stream, topology.run_subject(org.id, wid))
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == run["id"]
    body = json.loads(msg.data or b"{}")
    assert (body["run_id"], body["workflow_id"], body["trigger"]) == (run["id"], wid, "manual")

    # No body at all is an empty input.
    resp = await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)
    assert resp.status == 201 and (await resp.json())["input"] == {}
    assert await _stream_count(js, topology) == 2


async def test_idempotency_key_returns_the_same_run(
    api: Client, org: Org, js: JetStreamContext, topology: Topology, pool: Pool
) -> None:
    wid = (await create_workflow(api, org))["id"]
    headers = {**org.headers, "Idempotency-Key": "order-42"}
    path = f"/api/workflows/{wid}/runs"
    first = await api.post(path, json={"input": {"a": 1}}, headers=headers)
    again = await api.post(path, json={"input": {"a": 1}}, headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert await _stream_count(js, topology) == 1
    assert await pool.fetchval("SELECT count(*) FROM workflow_runs") == 1

    resp = await api.post(path, json={"input": {"a": 2}}, headers=headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "Idempotency-Key"
    resp = await api.post(path, json={"inputs": {}}, headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "inputs"
    await assert_problem(
        await api.post(f"/api/workflows/{uuid.uuid4()}/runs", headers=org.headers), 404
    )


async def _insert_run(
    pool: Pool, org: Org, wid: str, status: str, created: datetime, schedule: uuid.UUID | None
) -> str:
    run_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger,
               schedule_id, scheduled_for, status, created_at)
           VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $6)""",
        run_id,
        org.id,
        uuid.UUID(wid),
        "schedule" if schedule else "manual",
        schedule,
        created,
        status,
    )
    return str(run_id)


async def test_list_filters_and_paginates(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org, name="a"))["id"]
    other = (await create_workflow(api, org, name="b"))["id"]
    sched = await api.post(
        f"/api/workflows/{wid}/schedule", json={"cron": "0 * * * *"}, headers=org.headers
    )
    sid = uuid.UUID((await sched.json())["id"])
    base = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = ["succeeded", "failed", "succeeded", "running", "succeeded"]
    ids = [
        await _insert_run(pool, org, wid, s, base + timedelta(minutes=i), sid)
        for i, s in enumerate(statuses)
    ]
    await _insert_run(pool, org, other, "failed", base, None)

    async def get(**params: str) -> dict[str, Any]:
        resp = await api.get("/api/runs", params=params, headers=org.headers)
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    seen: list[str] = []
    page = await get(workflow_id=wid, limit="2")
    while True:
        seen += [r["id"] for r in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await get(workflow_id=wid, limit="2", cursor=page["next_cursor"])
    assert seen == ids[::-1]

    succeeded = await get(status="succeeded", schedule_id=str(sid))
    assert [r["id"] for r in succeeded["items"]] == [ids[4], ids[2], ids[0]]
    assert len((await get(status="failed"))["items"]) == 2
    resp = await api.get("/api/runs", params={"status": "exploded"}, headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "status"


async def test_run_detail_with_steps_and_logs(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org))["id"]
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    run_id = await _insert_run(pool, org, wid, "succeeded", t0, None)
    await pool.execute(
        "UPDATE workflow_runs SET started_at = $2, finished_at = $3, output = $4 WHERE id = $1",
        uuid.UUID(run_id),
        t0,
        t0 + timedelta(seconds=2.5),
        {"ok": True},
    )
    steps = [
        ("log", "action", "skipped", None, None),
        ("fetch", "action", "succeeded", t0 + timedelta(seconds=1), t0 + timedelta(seconds=2)),
        ("start", "trigger", "succeeded", t0, t0),
    ]
    for node, kind, status, started, finished in steps:
        await pool.execute(
            """INSERT INTO run_steps (run_id, node_id, org_id, node_type, status, started_at,
                   finished_at, output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            uuid.UUID(run_id),
            node,
            org.id,
            kind,
            status,
            started,
            finished,
            {"node": node},
        )
    for i in range(5):
        await pool.execute(
            "INSERT INTO run_logs (run_id, org_id, node_id, level, message) "
            "VALUES ($1, $2, $3, 'info', $4)",
            uuid.UUID(run_id),
            org.id,
            "fetch" if i % 2 else None,
            f"line {i}",
        )

    run = await (await api.get(f"/api/runs/{run_id}", headers=org.headers)).json()
    assert (run["status"], run["duration_ms"], run["output"]) == ("succeeded", 2500, {"ok": True})
    assert [s["node_id"] for s in run["steps"]] == ["start", "fetch", "log"]
    assert run["steps"][1]["duration_ms"] == 1000 and run["steps"][2]["duration_ms"] is None
    assert run["steps"][1]["output"] == {"node": "fetch"}

    path = f"/api/runs/{run_id}/logs"
    page = await (await api.get(path, params={"limit": "3"}, headers=org.headers)).json()
    assert [line["message"] for line in page["items"]] == ["line 0", "line 1", "line 2"]
    rest = await (
        await api.get(path, params={"cursor": page["next_cursor"]}, headers=org.headers)
    ).json()
    assert [line["message"] for line in rest["items"]] == ["line 3", "line 4"]
    assert rest["next_cursor"] is None
    fetch = await (await api.get(path, params={"node_id": "fetch"}, headers=org.headers)).json()
    assert [line["message"] for line in fetch["items"]] == ["line 1", "line 3"]

    await assert_problem(await api.get(f"/api/runs/{uuid.uuid4()}", headers=org.headers), 404)
    await assert_problem(await api.get(f"/api/runs/{uuid.uuid4()}/logs", headers=org.headers), 404)
    resp = await api.get("/api/runs/123", headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "id"


async def test_cancel_and_retry(
    api: Client, org: Org, pool: Pool, js: JetStreamContext, topology: Topology
) -> None:
    wid = (await create_workflow(api, org))["id"]
    run = await (
        await api.post(f"/api/workflows/{wid}/runs", json={"input": {"x": 1}}, headers=org.headers)
    ).json()
    rid = uuid.UUID(run["id"])
    await pool.execute("UPDATE workflow_runs SET status = 'running' WHERE id = $1", rid)
    await pool.execute(
        """INSERT INTO run_steps (run_id, node_id, org_id, node_type, status, started_at)
           VALUES ($1, 'fetch', $2, 'action', 'running', now())""",
        rid,
        org.id,
    )
    retry_path = f"/api/runs/{rid}/retry"
    body = await assert_problem(await api.post(retry_path, headers=org.headers), 409)
    assert "running" in body["detail"]

    resp = await api.post(f"/api/runs/{rid}/cancel", headers=org.headers)
    assert resp.status == 200, await resp.text()
    cancelled = await resp.json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    step = await pool.fetchrow("SELECT status, finished_at FROM run_steps WHERE run_id = $1", rid)
    assert step is not None and step["status"] == "cancelled" and step["finished_at"]
    await assert_problem(await api.post(f"/api/runs/{rid}/cancel", headers=org.headers), 409)

    resp = await api.post(retry_path, headers=org.headers)
    assert resp.status == 201, await resp.text()
    retry = await resp.json()
    assert retry["id"] != run["id"]
    assert (retry["trigger"], retry["status"], retry["input"]) == ("retry", "queued", {"x": 1})
    assert await _stream_count(js, topology) == 2
    for path in (f"/api/runs/{uuid.uuid4()}/cancel", f"/api/runs/{uuid.uuid4()}/retry"):
        await assert_problem(await api.post(path, headers=org.headers), 404)
