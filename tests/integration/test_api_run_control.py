"""Runs: the time-range filter, cancel, retry (over again, or from the failed step)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from shared.control import cancel_subject, cancel_wildcard
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem, create_workflow
from tests.waiting import wait_for


async def _async(value: list[str]) -> list[str]:
    return value


async def _run(api: Client, org: Org, wid: str) -> str:
    resp = await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)
    assert resp.status == 201, await resp.text()
    run_id: str = (await resp.json())["id"]
    return run_id


async def test_runs_filtered_by_time_range(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org))["id"]
    ids = [await _run(api, org, wid) for _ in range(3)]
    day = datetime(2026, 3, 1, tzinfo=UTC)
    for i, run_id in enumerate(ids):
        await pool.execute(
            "UPDATE workflow_runs SET created_at = $2 WHERE id = $1",
            uuid.UUID(run_id),
            day + timedelta(days=i),
        )

    async def listed(**params: str) -> list[str]:
        resp = await api.get("/api/runs", params=params, headers=org.headers)
        assert resp.status == 200, await resp.text()
        return [r["id"] for r in (await resp.json())["items"]]

    assert await listed(created_after="2026-03-02T00:00:00Z") == [ids[2], ids[1]]
    assert await listed(created_before="2026-03-02T00:00:00Z") == [ids[0]]
    assert await listed(
        created_after="2026-03-01T12:00:00+01:00", created_before="2026-03-03T00:00:00"
    ) == [ids[1]]
    assert await listed(created_after="2026-03-02T00:00:00Z", limit="1") == [ids[2]]
    problem = await assert_problem(
        await api.get("/api/runs", params={"created_after": "yesterday"}, headers=org.headers),
        422,
    )
    assert problem["errors"][0]["field"] == "created_after"


async def test_cancel_then_retry_over_again(
    api: Client, org: Org, nats_client: NatsClient, topology: Topology
) -> None:
    wid = (await create_workflow(api, org))["id"]
    run_id = await _run(api, org, wid)
    heard: list[str] = []

    async def on_cancel(msg: Msg) -> None:
        heard.append(msg.subject)

    await nats_client.subscribe(cancel_wildcard(topology.namespace), cb=on_cancel)
    await nats_client.flush()
    resp = await api.post(f"/api/runs/{run_id}/cancel", headers=org.headers)
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    await wait_for(lambda: _async(heard), message="the cancel control message")
    assert heard == [cancel_subject(topology.namespace, run_id)]
    await assert_problem(await api.post(f"/api/runs/{run_id}/cancel", headers=org.headers), 409)

    resp = await api.post(f"/api/runs/{run_id}/retry", headers=org.headers)
    assert resp.status == 201, await resp.text()
    retry = await resp.json()
    assert retry["trigger"] == "retry" and retry["status"] == "queued"
    assert retry["retry_of"] == run_id
    assert retry["published_at"] is not None
    detail = await (await api.get(f"/api/runs/{retry['id']}", headers=org.headers)).json()
    assert detail["steps"] == []
    await assert_problem(
        await api.post(
            f"/api/runs/{run_id}/retry", json={"from_failed": "yes"}, headers=org.headers
        ),
        422,
    )


async def test_retry_from_the_failed_step_copies_the_succeeded_steps(
    api: Client, org: Org, pool: Pool
) -> None:
    wid = (await create_workflow(api, org))["id"]
    run_id = await _run(api, org, wid)
    original = uuid.UUID(run_id)
    await pool.execute(
        """UPDATE workflow_runs SET status = 'failed', error = 'fetch failed',
           started_at = now(), finished_at = now() WHERE id = $1""",
        original,
    )
    for node, status in (("start", "succeeded"), ("fetch", "failed"), ("log", "pending")):
        await pool.execute(
            """INSERT INTO run_steps (run_id, node_id, org_id, node_type, status, output)
               VALUES ($1, $2, $3, 'action', $4, $5)""",
            original,
            node,
            org.id,
            status,
            {"node": node},
        )
    # The graph changes after the run: resuming keeps the run's own version.
    await api.patch(f"/api/workflows/{wid}", json={"name": "renamed"}, headers=org.headers)

    resp = await api.post(
        f"/api/runs/{run_id}/retry", json={"from_failed": True}, headers=org.headers
    )
    assert resp.status == 201, await resp.text()
    retry = await resp.json()
    assert retry["workflow_version"] == 1 and retry["retry_of"] == run_id
    detail = await (await api.get(f"/api/runs/{retry['id']}", headers=org.headers)).json()
    assert [(s["node_id"], s["status"], s["output"]) for s in detail["steps"]] == [
        ("start", "succeeded", {"node": "start"})
    ]
