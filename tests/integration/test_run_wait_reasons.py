"""A run read says why a queued or running run waits; never null before it ends.

The queue position ("queued behind N messages") is counted from Postgres, so these
tests trigger runs through the API with no executor consuming, then read them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import running_executor
from tests.integration.test_api_support import Client, api_client, create_workflow
from tests.waiting import wait_for

BEHIND = re.compile(r"^queued behind ([\d,]+\+?) messages \(executors busy or not running\)$")
QUICK_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "say", "type": "action", "action": "log_message", "config": {"message": "hi"}},
    ],
    "edges": [{"from": "start", "to": "say"}],
}


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def _trigger(api: Client, org: Org, workflow_id: str) -> dict[str, Any]:
    resp = await api.post(f"/api/workflows/{workflow_id}/runs", headers=org.headers)
    assert resp.status == 201, await resp.text()
    run: dict[str, Any] = await resp.json()
    return run


async def _read(api: Client, org: Org, run_id: object) -> dict[str, Any]:
    resp = await api.get(f"/api/runs/{run_id}", headers=org.headers)
    assert resp.status == 200, await resp.text()
    run: dict[str, Any] = await resp.json()
    return run


def _behind(reason: str | None) -> str:
    match = BEHIND.match(reason or "")
    assert match, reason
    return match[1]


async def test_a_queued_run_says_how_many_messages_are_ahead_of_it(
    api: Client, org: Org, other_org: Org, js: JetStreamContext, settings: Settings
) -> None:
    workflow = await create_workflow(api, org)
    runs = [await _trigger(api, org, workflow["id"]) for _ in range(3)]
    assert all(run["published_at"] is not None for run in runs)
    third = await _read(api, org, runs[2]["id"])
    assert third["status"] == "queued"
    assert third["wait_reason"] == "queued behind 2 messages (executors busy or not running)"
    assert _behind((await _read(api, org, runs[0]["id"]))["wait_reason"]) == "0"
    # JetStream agrees: three messages wait for the executors consumer.
    info = await js.consumer_info(f"{settings.namespace.upper()}_RUNS", "executors")
    assert info.num_pending == 3

    # The list says the same, newest first.
    resp = await api.get("/api/runs", params={"status": "queued"}, headers=org.headers)
    items = (await resp.json())["items"]
    assert [_behind(item["wait_reason"]) for item in items] == ["2", "1", "0"]

    # Another organization's runs share the queue: they are ahead of later runs too.
    other = await create_workflow(api, other_org)
    await _trigger(api, other_org, other["id"])
    fifth = await _trigger(api, org, workflow["id"])
    assert _behind((await _read(api, org, fifth["id"]))["wait_reason"]) == "4"


async def test_runs_not_published_held_or_paced_say_so(api: Client, org: Org, pool: Pool) -> None:
    workflow = await create_workflow(api, org)
    run = await _trigger(api, org, workflow["id"])
    run_id = uuid.UUID(run["id"])

    async def reason_after(sql: str, *args: object) -> str:
        await pool.execute(sql, run_id, *args)
        reason = (await _read(api, org, run_id))["wait_reason"]
        assert isinstance(reason, str)
        return reason

    unpublished = "UPDATE workflow_runs SET published_at = NULL WHERE id = $1"
    assert (await reason_after(unpublished)).startswith("not published to the queue yet")
    paced = "UPDATE workflow_runs SET release_at = now() + interval '1 hour' WHERE id = $1"
    assert (await reason_after(paced)).startswith("released at ")
    held = "UPDATE workflow_runs SET held = true WHERE id = $1"
    assert "buffer_one" in await reason_after(held)
    # What the executor writes for a run held by max_concurrency is kept.
    limited = (
        "UPDATE workflow_runs SET held = false, published_at = now(), release_at = NULL,"
        " wait_reason = $2 WHERE id = $1"
    )
    reason = "held by max_concurrency: 1 of at most 1 runs of this workflow are running"
    assert await reason_after(limited, reason) == reason
    # A run handed back to the queue (wait reason cleared) counts its place again.
    assert _behind(await reason_after("UPDATE workflow_runs SET wait_reason = NULL WHERE id = $1"))


async def test_running_runs_say_what_they_are_doing(api: Client, org: Org, pool: Pool) -> None:
    workflow = await create_workflow(api, org)
    run_id = uuid.UUID((await _trigger(api, org, workflow["id"]))["id"])
    await pool.execute(
        "UPDATE workflow_runs SET status = 'running', attempt = 1, wait_reason = NULL,"
        " executor_id = 'host-a:42:abc123', started_at = now() WHERE id = $1",
        run_id,
    )
    reason = (await _read(api, org, run_id))["wait_reason"]
    assert reason == "not waiting: executing on executor host-a:42:abc123"
    backoff = "retry backoff: node 'fetch' tries again (attempt 2 of 3) at 2030-01-01T00:00:00Z"
    await pool.execute("UPDATE workflow_runs SET wait_reason = $2 WHERE id = $1", run_id, backoff)
    assert (await _read(api, org, run_id))["wait_reason"] == backoff
    await pool.execute("UPDATE workflow_runs SET status = 'succeeded' WHERE id = $1", run_id)
    assert (await _read(api, org, run_id))["wait_reason"] is None


async def test_no_run_read_is_queued_or_running_without_a_reason(
    api: Client, org: Org, pool: Pool, js: JetStreamContext, settings: Settings
) -> None:
    """Real runs through a real executor: every read before the end names a reason."""
    resp = await api.post(
        "/api/workflows",
        json={"name": "quick", "graph": QUICK_GRAPH},
        headers=org.headers,
    )
    workflow = await resp.json()
    runs = [await _trigger(api, org, workflow["id"]) for _ in range(5)]
    seen: set[str] = set()

    async def all_ended() -> bool:
        resp = await api.get("/api/runs", params={"limit": "50"}, headers=org.headers)
        items = (await resp.json())["items"]
        for item in items:
            if item["status"] in ("queued", "running"):
                assert item["wait_reason"], item
                seen.add(item["status"])
            else:
                assert item["wait_reason"] is None, item
        return len(items) == len(runs) and not seen & {i["status"] for i in items}

    assert not await all_ended()  # all queued: no executor yet
    async with running_executor(settings, pool, js):
        await wait_for(all_ended, timeout=20, message="every run ended")
    assert "queued" in seen


async def test_the_position_is_capped_and_cheap(api: Client, org: Org, pool: Pool) -> None:
    workflow = await create_workflow(api, org)
    await pool.execute(
        """
        INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger, status,
                                   input, created_at, published_at)
        SELECT gen_random_uuid(), $1, $2, 1, 'manual', 'queued', '{}',
               now() - interval '1 hour' + n * interval '1 ms',
               now() - interval '1 hour' + n * interval '1 ms'
          FROM generate_series(1, 10050) AS n
        """,
        org.id,
        uuid.UUID(workflow["id"]),
    )
    await pool.execute("ANALYZE workflow_runs")
    run = await _trigger(api, org, workflow["id"])
    started = time.perf_counter()
    reason = (await _read(api, org, run["id"]))["wait_reason"]
    elapsed = time.perf_counter() - started
    assert _behind(reason) == "10,000+"
    assert elapsed < 1.0  # a bounded scan, not a count of the whole queue
    oldest = await pool.fetchval(
        "SELECT id FROM workflow_runs WHERE org_id = $1 ORDER BY created_at LIMIT 5 OFFSET 1233",
        org.id,
    )
    assert _behind((await _read(api, org, oldest))["wait_reason"]) == "1,233"
    # A list page counts at most 100 ahead of each run (open the run for more).
    resp = await api.get("/api/runs", params={"limit": "3"}, headers=org.headers)
    assert [_behind(i["wait_reason"]) for i in (await resp.json())["items"]] == ["100+"] * 3
