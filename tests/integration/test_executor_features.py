"""Loops, secrets, cancellation, run timeouts, max_concurrency, wait reasons, retry_on
and retries from the failed step, on real Postgres and JetStream."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import pytest
from aiohttp import web
from nats.aio.client import Client
from nats.js import JetStreamContext

from shared.control import request_cancel
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.secrets import (
    SecretsKeyError,
    delete_secret,
    list_secret_names,
    load_secrets,
    new_key,
    put_secret,
)
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    Remote,
    create_run,
    create_workflow,
    publish,
    running_executor,
    serving,
    steps_of,
    wait_for_status,
)
from tests.waiting import wait_for


def action(node_id: str, name: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "action", "action": name, "config": config, **extra}


def chain(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """trigger → nodes, one after another."""
    ids = ["start", *(n["id"] for n in nodes)]
    edges = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    return {"nodes": [{"id": "start", "type": "trigger"}, *nodes], "edges": edges, **extra}


async def run_once(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org: Org,
    graph: dict[str, Any],
    run_input: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    async with running_executor(settings, pool, js, **overrides):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(pool, org.id, workflow_id, run_input=run_input)
        await publish(pool, js, topology, message)
        return await wait_for_status(pool, message.run_id)


def items_remote() -> tuple[Remote, dict[str, int]]:
    remote = Remote()
    gauge = {"now": 0, "max": 0}

    async def item(request: web.Request) -> web.Response:
        gauge["now"] += 1
        gauge["max"] = max(gauge["max"], gauge["now"])
        try:
            await asyncio.sleep(0.05)  # the remote's own latency, so items overlap
            n = int(request.match_info["n"])
            if n == 13:
                return web.json_response({"bad": n}, status=500)
            return web.json_response({"n": n})
        finally:
            gauge["now"] -= 1

    remote.app.router.add_get("/item/{n}", item)
    return remote, gauge


def loop_graph(on_error: str = "fail", concurrency: int = 3) -> dict[str, Any]:
    body = chain(
        action("call", "http_request", {"url": "{{ input.base }}/item/{{ loop.item }}"}),
        {
            "id": "ten",
            "type": "transform",
            "config": {"value": "{{ nodes.call.output.body.n * 10 }}"},
        },
    )
    body["on_error"] = on_error
    loop = {
        "id": "each",
        "type": "loop",
        "config": {"items": "{{ input.ids }}", "concurrency": concurrency},
        "body": {
            "nodes": [{**body["nodes"][0], "id": "item"}, *body["nodes"][1:]],
            "edges": [{"from": "item", "to": "call"}, *body["edges"][1:]],
            "on_error": on_error,
        },
    }
    total = {
        "id": "total",
        "type": "transform",
        "config": {"value": "{{ nodes.each.output | length }}"},
    }
    return chain(loop, total)


async def test_a_loop_runs_its_body_per_item_within_its_concurrency(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote, gauge = items_remote()
    async with serving(remote):
        ids = [1, 2, 3, 4, 5, 6, 7]
        run = await run_once(
            settings, pool, js, topology, org, loop_graph(), {"base": remote.base_url, "ids": ids}
        )
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == {"total": 7}
    steps = await steps_of(pool, run["id"])
    assert steps["each"]["output"] == [{"ten": n * 10} for n in ids]
    assert steps["each[6].call"]["status"] == "succeeded"
    assert steps["each[0].ten"]["output"] == 10
    assert 2 <= gauge["max"] <= 3


@pytest.mark.parametrize("on_error", ["fail", "continue"])
async def test_a_failed_item_follows_the_bodys_on_error(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org: Org,
    on_error: str,
) -> None:
    remote, _ = items_remote()
    async with serving(remote):
        run = await run_once(
            settings,
            pool,
            js,
            topology,
            org,
            loop_graph(on_error, concurrency=1),
            {"base": remote.base_url, "ids": [1, 13, 2]},
        )
    steps = await steps_of(pool, run["id"])
    assert steps["each[1].call"]["status"] == "failed"
    if on_error == "continue":
        assert run["status"] == "succeeded", run["error"]
        output = steps["each"]["output"]
        assert output[0] == {"ten": 10} and output[2] == {"ten": 20}
        assert "HTTP 500" in output[1]["error"]
    else:
        assert run["status"] == "failed"
        assert "node 'each' failed: item 1 failed" in run["error"]
        assert "each[2].call" not in steps  # items after the failure never started


async def test_secrets_are_encrypted_resolved_and_masked(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    keyed = settings.model_copy(update={"secrets_key": new_key()})
    token = f"tok-{uuid.uuid4().hex}"
    assert await put_secret(pool, org.id, "TOKEN", "old", keyed) is True
    assert await put_secret(pool, org.id, "TOKEN", token, keyed) is False
    await put_secret(pool, org.id, "GONE", "x", keyed)
    assert await delete_secret(pool, org.id, "GONE") is True
    assert [r["name"] for r in await list_secret_names(pool, org.id)] == ["TOKEN"]
    stored = await pool.fetchval("SELECT value FROM secrets WHERE name = 'TOKEN'")
    assert token.encode() not in bytes(stored)
    assert await load_secrets(pool, org.id, keyed) == {"TOKEN": token}
    with pytest.raises(SecretsKeyError, match="FLOWCRON_SECRETS_KEY"):
        await load_secrets(pool, org.id, settings)

    remote = Remote()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers["Authorization"]})

    remote.route("GET", "/me", echo)
    graph = chain(
        action(
            "call",
            "http_request",
            {
                "url": "{{ input.base }}/me",
                "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
            },
        ),
        action("say", "log_message", {"message": "sent {{ secrets.TOKEN }}"}),
    )
    async with serving(remote):
        run = await run_once(
            settings,
            pool,
            js,
            topology,
            org,
            graph,
            {"base": remote.base_url},
            secrets_key=keyed.secrets_key,
        )
        assert run["status"] == "succeeded", run["error"]
        assert remote.requests[0][1]["Authorization"] == f"Bearer {token}"
        # Without the key the run fails with a reason naming the setting.
        failed = await run_once(settings, pool, js, topology, org, graph, {"base": remote.base_url})
    assert failed["status"] == "failed" and "FLOWCRON_SECRETS_KEY" in failed["error"]

    written = str(dict(run)) + str([dict(s) for s in (await steps_of(pool, run["id"])).values()])
    written += str(await pool.fetch("SELECT * FROM run_logs WHERE run_id = $1", run["id"]))
    assert token not in written
    steps = await steps_of(pool, run["id"])
    assert steps["call"]["input"]["headers"]["Authorization"] == "Bearer ***"
    assert steps["call"]["output"]["body"] == {"auth": "Bearer ***"}
    assert run["output"] == {"say": {"message": "sent ***"}}


def delay_graph(seconds: float = 30, **extra: Any) -> dict[str, Any]:
    return chain(
        action("hello", "log_message", {"message": "hi"}),
        action("wait", "delay", {"seconds": seconds}),
        action("bye", "log_message", {"message": "bye"}),
        **extra,
    )


async def pending_acks(js: JetStreamContext, topology: Topology) -> int:
    info = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
    return int(info.num_ack_pending)


@pytest.mark.parametrize("api_first", [True, False])
async def test_a_cancel_request_stops_a_running_run_within_a_second(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    nats_client: Client,
    topology: Topology,
    org: Org,
    api_first: bool,
) -> None:
    async with running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, delay_graph())
        message = await create_run(pool, org.id, workflow_id)
        await publish(pool, js, topology, message)

        async def waiting() -> Any:
            row = await pool.fetchrow(
                "SELECT wait_reason FROM workflow_runs WHERE id = $1", message.run_id
            )
            return row is not None and "in a delay" in (row["wait_reason"] or "")

        await wait_for(waiting, message="the delay to start")
        started = time.monotonic()
        if api_first:  # what POST /api/runs/{id}/cancel does before asking executors
            await pool.execute(
                "UPDATE workflow_runs SET status = 'cancelled', error = 'cancelled by request',"
                " finished_at = now() WHERE id = $1",
                message.run_id,
            )
        await request_cancel(nats_client, settings.namespace, message.run_id)

        async def stopped() -> bool:
            steps = await steps_of(pool, message.run_id)
            return steps["wait"]["status"] == "cancelled" and await pending_acks(js, topology) == 0

        await wait_for(stopped, timeout=1.0, interval=0.02, message="the cancel")
        assert time.monotonic() - started < 1.0
        run = await wait_for_status(pool, message.run_id)
    assert (run["status"], run["error"], run["wait_reason"]) == (
        "cancelled",
        "cancelled by request",
        None,
    )
    steps = await steps_of(pool, message.run_id)
    assert steps["hello"]["status"] == "succeeded"
    assert "bye" not in steps


async def test_a_run_over_its_timeout_is_timed_out(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    run = await run_once(settings, pool, js, topology, org, delay_graph(timeout_s=0.5))
    assert run["status"] == "timed_out"
    assert run["error"] == "run timed out after 0.5s (timeout_s)"
    steps = await steps_of(pool, run["id"])
    assert (steps["wait"]["status"], steps["wait"]["error"]) == ("cancelled", "run timed out")


async def test_max_concurrency_holds_extra_runs_and_drops_none(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id, delay_graph(seconds=0.3))
    await pool.execute("UPDATE workflows SET max_concurrency = 1 WHERE id = $1", workflow_id)
    reasons: set[str] = set()
    async with running_executor(settings, pool, js, executor_hold_s=0.1):
        messages = [await create_run(pool, org.id, workflow_id) for _ in range(3)]
        for message in messages:
            await publish(pool, js, topology, message)

        async def all_done() -> bool:
            rows = await pool.fetch("SELECT status, wait_reason FROM workflow_runs")
            reasons.update(r["wait_reason"] for r in rows if r["wait_reason"])
            assert sum(r["status"] == "running" for r in rows) <= 1
            return all(r["status"] == "succeeded" for r in rows)

        await wait_for(all_done, timeout=15, interval=0.02, message="every run")
    assert any(r.startswith("held by max_concurrency: 1 of at most 1") for r in reasons), reasons
    rows = await pool.fetch("SELECT started_at, finished_at FROM workflow_runs ORDER BY started_at")
    for before, after in itertools.pairwise(rows):
        assert before["finished_at"] <= after["started_at"]


async def test_retry_backoff_is_a_wait_reason_and_retry_on_picks_the_failures(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def flaky(request: web.Request) -> web.Response:
        return web.json_response({}, status=503 if remote.hits["/flaky"] == 1 else 200)

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({}, status=404)

    remote.route("GET", "/flaky", flaky)
    remote.route("GET", "/missing", missing)
    retry = {"max_attempts": 3, "backoff_s": 1.0, "retry_on": ["http_5xx", "timeout"]}
    graph = chain(
        action("flaky", "http_request", {"url": "{{ input.base }}/flaky"}, retry=retry),
        action("missing", "http_request", {"url": "{{ input.base }}/missing"}, retry=retry),
    )
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(pool, org.id, workflow_id, run_input={"base": remote.base_url})
        await publish(pool, js, topology, message)

        async def backing_off() -> Any:
            return await pool.fetchval(
                "SELECT wait_reason FROM workflow_runs WHERE id = $1 AND wait_reason LIKE 'retry%'",
                message.run_id,
            )

        reason = await wait_for(backing_off, message="a retry backoff")
        run = await wait_for_status(pool, message.run_id)
    assert "node 'flaky' tries again (attempt 2 of 3) at 20" in reason
    assert run["status"] == "failed"
    steps = await steps_of(pool, message.run_id)
    assert (steps["flaky"]["status"], steps["flaky"]["attempt"]) == ("succeeded", 2)
    assert (steps["missing"]["status"], steps["missing"]["attempt"]) == ("failed", 1)
    assert remote.hits["/missing"] == 1


async def test_a_retry_from_the_failed_step_resumes_after_the_copied_steps(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    """What POST /api/runs/{id}/retry {"from_failed": true} leaves for the executor: a
    queued run (first delivery) with the original's succeeded steps copied in."""
    remote = Remote()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"n": int(request.query["n"])})

    remote.route("GET", "/first", echo)
    remote.route("GET", "/then", echo)
    graph = chain(
        action("first", "http_request", {"url": "{{ input.base }}/first", "query": {"n": "1"}}),
        action(
            "then",
            "http_request",
            {"url": "{{ input.base }}/then", "query": {"n": "{{ nodes.first.output.body.n + 1 }}"}},
        ),
    )
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        original = await create_run(pool, org.id, workflow_id, status="failed")
        retry = await create_run(pool, org.id, workflow_id, run_input={"base": remote.base_url})
        await pool.execute(
            "UPDATE workflow_runs SET trigger = 'retry', retry_of = $2 WHERE id = $1",
            retry.run_id,
            original.run_id,
        )
        for node_id, output in (
            ("start", {"base": remote.base_url}),
            ("first", {"body": {"n": 41}}),
        ):
            await pool.execute(
                "INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt,"
                " output) VALUES ($1, $2, $3, 'action', 'succeeded', 1, $4)",
                retry.run_id,
                org.id,
                node_id,
                output,
            )
        await publish(pool, js, topology, retry)
        run = await wait_for_status(pool, retry.run_id)
    assert run["status"] == "succeeded", run["error"]
    assert (run["attempt"], run["retry_of"]) == (1, original.run_id)
    assert remote.hits["/first"] == 0
    assert run["output"]["then"]["body"] == {"n": 42}


async def test_a_queued_run_says_so_and_an_ended_run_waits_for_nothing(
    pool: Pool, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id, delay_graph())
    message = await create_run(pool, org.id, workflow_id)
    query = "SELECT wait_reason FROM workflow_runs WHERE id = $1"
    assert await pool.fetchval(query, message.run_id) == "queued"
    # As the API's cancel or the scheduler's overlap policy end a run: not the executor.
    await pool.execute(
        "UPDATE workflow_runs SET status = 'cancelled' WHERE id = $1", message.run_id
    )
    assert await pool.fetchval(query, message.run_id) is None
