"""Concurrent manual triggers are written and published together, each answered alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest_asyncio
from nats.js import JetStreamContext

from services.api.triggers import TRIGGERS
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, api_client, create_workflow
from tests.waiting import wait_for


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def test_concurrent_triggers_share_batches_and_each_gets_its_run(
    api: Client, org: Org, other_org: Org, pool: Pool, js: JetStreamContext, topology: Topology
) -> None:
    mine = (await create_workflow(api, org))["id"]
    theirs = (await create_workflow(api, other_org))["id"]
    assert api.app is not None
    batcher = api.app[TRIGGERS]
    before = batcher.batches

    async def trigger(workflow: str, n: int) -> tuple[int, Any]:
        resp = await api.post(
            f"/api/workflows/{workflow}/runs", json={"input": {"n": n}}, headers=org.headers
        )
        return resp.status, await resp.json()

    # 60 triggers at once, every sixth of them for another organization's workflow.
    calls = [trigger(theirs if n % 6 == 0 else mine, n) for n in range(60)]
    answers = await asyncio.gather(*calls)

    for n, (status, body) in enumerate(answers):
        if n % 6 == 0:
            assert status == 404 and body["type"].endswith("not-found"), body
            continue
        assert status == 201, body
        assert body["input"] == {"n": n} and body["workflow_id"] == mine
        assert body["status"] == "queued" and body["published_at"] is not None
        assert body["wait_reason"].startswith("queued behind ")
    created = [body for n, (_, body) in enumerate(answers) if n % 6]
    assert len({body["id"] for body in created}) == 50
    assert batcher.batches - before < 60  # group commit: fewer batches than triggers

    rows = await pool.fetch(
        "SELECT id, input, published_at FROM workflow_runs WHERE workflow_id = $1", mine
    )
    assert {str(r["id"]) for r in rows} == {body["id"] for body in created}
    assert all(r["published_at"] is not None for r in rows)
    assert (
        await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE workflow_id = $1", theirs)
        == 0
    )
    info = await js.stream_info(topology.runs_stream)
    assert info.state.messages == 50


async def test_inputs_of_every_shape_come_back_as_sent(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org))["id"]
    inputs: list[dict[str, Any]] = [
        {},
        {"q": "say \"hi\" \\ {a,b} 'x'", "u": "žluť 🚀 \u2028", "nul": None},
        {"nested": {"list": [1, 2.5, {"deep": [True, False, None, ""]}], "e": {}}},
    ]

    async def trigger(run_input: dict[str, Any]) -> tuple[int, Any]:
        resp = await api.post(
            f"/api/workflows/{wid}/runs", json={"input": run_input}, headers=org.headers
        )
        return resp.status, await resp.json()

    answers = await asyncio.gather(*(trigger(i) for i in inputs))
    for run_input, (status, body) in zip(inputs, answers, strict=True):
        assert status == 201, body
        assert body["input"] == run_input
        stored = await pool.fetchval("SELECT input FROM workflow_runs WHERE id = $1", body["id"])
        assert stored == run_input
        read = await (await api.get(f"/api/runs/{body['id']}", headers=org.headers)).json()
        assert read["input"] == run_input


async def test_a_workflow_deleted_mid_batch_fails_only_its_own_trigger(
    api: Client, org: Org, other_org: Org, pool: Pool
) -> None:
    doomed = (await create_workflow(api, org))["id"]
    kept = (await create_workflow(api, other_org))["id"]
    assert api.app is not None
    batcher = api.app[TRIGGERS]
    async with pool.acquire() as conn, conn.transaction():
        # The deletion is under way (its row lock held) while the batch is written.
        await conn.execute("DELETE FROM workflows WHERE id = $1", doomed)
        batch = asyncio.gather(
            batcher.trigger(org.id, uuid.UUID(doomed), {}),
            batcher.trigger(other_org.id, uuid.UUID(kept), {}),
            return_exceptions=True,
        )

        async def insert_waits_on_the_lock() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                    " AND query LIKE '%INSERT INTO workflow_runs AS r%'"
                )
            )

        await wait_for(insert_waits_on_the_lock, timeout=10, message="the batch to wait")
    gone, run = await asyncio.wait_for(batch, 10)
    assert gone is None
    assert not isinstance(run, BaseException) and run is not None, run
    assert str(run["workflow_id"]) == kept


async def test_a_trigger_arriving_as_the_writer_finishes_is_written(api: Client, org: Org) -> None:
    wid = uuid.UUID((await create_workflow(api, org))["id"])
    assert api.app is not None
    batcher = api.app[TRIGGERS]
    first = asyncio.ensure_future(batcher.trigger(org.id, wid, {"n": 1}))
    await asyncio.sleep(0)
    (waiting,) = batcher._waiting  # the first trigger's answer
    answered = waiting.answer

    async def resumes_with_the_writer() -> Any:
        # A handler that resumes in the loop iteration where the writer answers its
        # last batch, and triggers then (before the writer task's done-callbacks ran).
        while not answered.done():  # noqa: ASYNC110  # polled: resumed once per iteration
            await asyncio.sleep(0)
        return await batcher.trigger(org.id, wid, {"n": 2})

    second = asyncio.ensure_future(resumes_with_the_writer())
    first_row = await asyncio.wait_for(first, 10)
    assert first_row is not None and first_row["input"] == {"n": 1}
    row = await asyncio.wait_for(second, 10)
    assert row is not None and row["input"] == {"n": 2}


async def test_a_value_postgres_refuses_fails_only_its_own_trigger(
    api: Client, org: Org, other_org: Org
) -> None:
    mine = uuid.UUID((await create_workflow(api, org))["id"])
    theirs = uuid.UUID((await create_workflow(api, other_org))["id"])
    assert api.app is not None
    batcher = api.app[TRIGGERS]
    bad, good = await asyncio.gather(
        batcher.trigger(org.id, mine, {"text": "nul \u0000 inside"}),  # jsonb refuses \u0000
        batcher.trigger(other_org.id, theirs, {"ok": True}),
        return_exceptions=True,
    )
    assert isinstance(bad, asyncpg.DataError), bad
    assert not isinstance(good, BaseException) and good is not None, good
    assert good["input"] == {"ok": True}
