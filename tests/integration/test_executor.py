"""The executor on real Postgres and JetStream: graphs, branches, retries, errors."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    Remote,
    create_run,
    create_schedule,
    create_workflow,
    publish,
    running_executor,
    serving,
    steps_of,
    wait_for_status,
)


def action(
    node_id: str, name: str, config: dict[str, object], **extra: object
) -> dict[str, object]:
    return {"id": node_id, "type": "action", "action": name, "config": config, **extra}


async def test_http_condition_log_run_succeeds_and_counts_on_its_schedule(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def events(request: web.Request) -> web.Response:
        return web.json_response([{"id": 1}, {"id": 2}])

    remote.route("GET", "/events", events)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            action("fetch", "http_request", {"url": "{{ input.base_url }}/events"}),
            {
                "id": "ok",
                "type": "condition",
                "config": {"expression": "nodes.fetch.output.status == 200"},
            },
            action(
                "log", "log_message", {"message": "{{ nodes.fetch.output.body | length }} events"}
            ),
            action("alert", "log_message", {"message": "fetch failed", "level": "error"}),
        ],
        "edges": [
            {"from": "start", "to": "fetch"},
            {"from": "fetch", "to": "ok"},
            {"from": "ok", "to": "log", "branch": "true"},
            {"from": "ok", "to": "alert", "branch": "false"},
        ],
    }
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        schedule_id = await create_schedule(pool, org.id, workflow_id)
        message = await create_run(
            pool,
            org.id,
            workflow_id,
            run_input={"base_url": remote.base_url},
            schedule_id=schedule_id,
        )
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 1
    assert run["output"] == {"log": {"message": "2 events"}}
    steps = await steps_of(pool, message.run_id)
    assert steps["fetch"]["status"] == "succeeded"
    assert steps["fetch"]["output"]["status"] == 200
    assert steps["fetch"]["output"]["body"] == [{"id": 1}, {"id": 2}]
    assert steps["fetch"]["input"]["url"] == f"{remote.base_url}/events"
    assert steps["ok"]["output"] == {"result": True}
    assert steps["alert"]["status"] == "skipped"
    assert steps["log"]["finished_at"] >= steps["log"]["started_at"]
    logs = await pool.fetch("SELECT * FROM run_logs WHERE run_id = $1", message.run_id)
    assert [(r["node_id"], r["level"], r["message"]) for r in logs] == [("log", "info", "2 events")]
    [(_, headers, _)] = remote.requests
    assert headers["Idempotency-Key"] == f"{message.run_id}:fetch"
    schedule = await pool.fetchrow("SELECT * FROM workflow_schedules WHERE id = $1", schedule_id)
    assert schedule is not None
    assert (schedule["successful_runs"], schedule["failed_runs"]) == (1, 0)
    assert schedule["consecutive_failures"] == 0
    last = await js.get_last_msg(
        topology.events_stream, topology.event_subject(message.run_id, "run.finished")
    )
    assert json.loads(last.data or b"{}")["status"] == "succeeded"


async def test_retries_back_off_and_succeed_on_the_third_attempt(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def flaky(request: web.Request) -> web.Response:
        if remote.hits["/flaky"] < 3:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"ok": True})

    remote.route("POST", "/flaky", flaky)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            action(
                "call",
                "http_request",
                {"method": "POST", "url": "{{ input.url }}", "json": {"n": "{{ 40 + 2 }}"}},
                retry={"max_attempts": 3, "backoff_s": 0.05},
            ),
        ],
        "edges": [{"from": "start", "to": "call"}],
    }
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/flaky"}
        )
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "succeeded", run["error"]
    assert remote.hits["/flaky"] == 3
    assert [body for _, _, body in remote.requests] == [{"n": 42}] * 3
    steps = await steps_of(pool, message.run_id)
    assert steps["call"]["attempt"] == 3
    assert steps["call"]["output"]["body"] == {"ok": True}
    warnings = await pool.fetch(
        "SELECT message FROM run_logs WHERE run_id = $1 AND level = 'warning' ORDER BY id",
        message.run_id,
    )
    assert len(warnings) == 2
    assert "HTTP 503" in warnings[0]["message"]


async def test_timeout_fails_the_step_and_the_run_and_counts_a_failure(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    remote.route("GET", "/slow", slow)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            action("slow", "http_request", {"url": "{{ input.url }}"}, timeout_s=0.3),
            action("after", "log_message", {"message": "never"}),
        ],
        "edges": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "after"}],
    }
    try:
        async with serving(remote), running_executor(settings, pool, js):
            workflow_id = await create_workflow(pool, org.id, graph)
            schedule_id = await create_schedule(pool, org.id, workflow_id)
            message = await create_run(
                pool,
                org.id,
                workflow_id,
                run_input={"url": f"{remote.base_url}/slow"},
                schedule_id=schedule_id,
            )
            await publish(pool, js, topology, message)
            run = await wait_for_status(pool, message.run_id)
    finally:
        release.set()

    assert run["status"] == "failed"
    assert run["error"] == "node 'slow' failed: timed out after 0.3s (timeout_s)"
    steps = await steps_of(pool, message.run_id)
    assert steps["slow"]["status"] == "failed"
    assert steps["after"]["status"] == "cancelled"
    assert "'slow' failed" in steps["after"]["error"]
    schedule = await pool.fetchrow("SELECT * FROM workflow_schedules WHERE id = $1", schedule_id)
    assert schedule is not None
    assert (schedule["successful_runs"], schedule["failed_runs"]) == (0, 1)
    assert schedule["consecutive_failures"] == 3  # the helper starts it at 2


async def test_on_error_continue_and_route(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    remote.route("GET", "/broken", broken)
    url = "{{ input.url }}"
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            action("soft", "http_request", {"url": url}, on_error="continue"),
            action(
                "after_soft", "log_message", {"message": "soft said {{ nodes.soft.output.error }}"}
            ),
            action("routed", "http_request", {"url": url}, on_error="route"),
            action("normal", "log_message", {"message": "routed worked"}),
            action(
                "handler", "log_message", {"message": "handled: {{ nodes.routed.output.error }}"}
            ),
            {
                "id": "done",
                "type": "transform",
                "config": {"value": {"ok": "{{ nodes.handler.status }}"}},
            },
        ],
        "edges": [
            {"from": "start", "to": "soft"},
            {"from": "soft", "to": "after_soft"},
            {"from": "start", "to": "routed"},
            {"from": "routed", "to": "normal"},
            {"from": "routed", "to": "handler", "branch": "error"},
            {"from": "handler", "to": "done"},
            {"from": "normal", "to": "done"},
        ],
    }
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/broken"}
        )
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "succeeded", run["error"]
    steps = await steps_of(pool, message.run_id)
    assert steps["soft"]["status"] == "succeeded"
    assert "HTTP 500" in steps["soft"]["output"]["error"]
    assert steps["after_soft"]["status"] == "succeeded"
    assert steps["routed"]["status"] == "failed"
    assert steps["normal"]["status"] == "skipped"
    assert steps["handler"]["output"]["message"].startswith("handled: GET ")
    assert run["output"]["done"] == {"ok": "succeeded"}
    assert set(run["output"]) == {"after_soft", "done"}


async def test_template_errors_fail_before_the_action_runs(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    remote.route("GET", "/x", ok)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            action(
                "escape",
                "http_request",
                {"url": "{{ input.url }}", "headers": {"X": "{{ ''.__class__.__mro__ }}"}},
                retry={"max_attempts": 3, "backoff_s": 0},
            ),
        ],
        "edges": [{"from": "start", "to": "escape"}],
    }
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/x"}
        )
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "failed"
    assert remote.hits["/x"] == 0
    steps = await steps_of(pool, message.run_id)
    failed = {k: v["error"] for k, v in steps.items() if v["status"] == "failed"}
    assert set(failed) == {"escape"}
    assert "sandbox" in failed["escape"] and "config.headers.X" in failed["escape"]
    assert steps["escape"]["attempt"] == 1
