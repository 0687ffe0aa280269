"""At-least-once delivery made exactly-once execution: duplicates, resume, fencing,
dead letters and drain, against real JetStream redelivery."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from nats.js import JetStreamContext

from services.executor import store
from services.executor.errors import LostRun
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology, ensure_topology
from shared.models.messages import RunMessage
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    Remote,
    create_run,
    create_workflow,
    publish,
    publish_duplicate,
    running_executor,
    serving,
    steps_of,
    wait_for_status,
)
from tests.waiting import wait_for


def blocking_graph(second: str = "log") -> dict[str, object]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {
                "id": "call",
                "type": "action",
                "action": "http_request",
                "config": {"url": "{{ input.url }}"},
            },
            {
                "id": second,
                "type": "action",
                "action": "log_message",
                "config": {"message": "done"},
            },
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": second}],
    }


def blocking_remote(release: asyncio.Event) -> Remote:
    remote = Remote()

    async def block(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"n": remote.hits["/block"]})

    remote.route("GET", "/block", block)
    return remote


async def nak_first_delivery(js: JetStreamContext, topology: Topology) -> None:
    """Take the next delivery as a replica that dies would, and hand it back."""
    sub = await js.pull_subscribe(
        f"{topology.namespace}.runs.>", durable=EXECUTORS_CONSUMER, stream=topology.runs_stream
    )
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.metadata.num_delivered == 1
    await msg.nak()
    await sub.unsubscribe()


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


async def test_a_duplicate_message_does_not_start_a_running_run_again(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    release = asyncio.Event()
    remote = blocking_remote(release)
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, blocking_graph())
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/block"}
        )
        await publish(pool, js, topology, message)
        await wait_for(lambda: _hits(remote, "/block", 1), message="the first call")
        await publish_duplicate(js, topology, message)
        await publish(pool, js, topology, message)  # same Nats-Msg-Id: JetStream drops it
        # The duplicate is consumed (acked and dropped) while the original is in flight.
        await wait_for(
            lambda: _messages_left(js, topology.runs_stream, 1), message="duplicate dropped"
        )
        release.set()
        run = await wait_for_status(pool, message.run_id)
    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 1
    assert remote.hits["/block"] == 1


async def claim(
    pool: Pool, message: RunMessage, *, executor_id: str, redelivered: bool
) -> store.ClaimedRun | None:
    found = await store.claim_run(pool, message, executor_id=executor_id, redelivered=redelivered)
    assert not isinstance(found, store.Held)
    return found.run if found is not None else None


async def test_concurrent_claims_of_one_run_have_one_winner(pool: Pool, org: Org) -> None:
    workflow_id = await create_workflow(pool, org.id, blocking_graph())
    message = await create_run(pool, org.id, workflow_id)
    claims = await asyncio.gather(
        *(claim(pool, message, executor_id=f"x{i}", redelivered=False) for i in range(4))
    )
    assert len([c for c in claims if c is not None]) == 1
    # A first delivery of a running run is a duplicate; only a redelivery takes it over.
    assert await claim(pool, message, executor_id="y", redelivered=False) is None
    again = await claim(pool, message, executor_id="y", redelivered=True)
    assert again is not None and again.attempt == 2


async def test_a_stale_attempt_writes_nothing(pool: Pool, org: Org) -> None:
    workflow_id = await create_workflow(pool, org.id, blocking_graph())
    message = await create_run(pool, org.id, workflow_id)
    first = await claim(pool, message, executor_id="old", redelivered=False)
    assert first is not None
    old = store.RunStore(pool, first)
    await old.step_started("call", "action", 1, {"url": "x"})
    second = await claim(pool, message, executor_id="new", redelivered=True)
    assert second is not None and second.attempt == 2

    with pytest.raises(LostRun):
        await old.step_finished("call", "action", "succeeded", attempt=1, output={"stale": True})
    with pytest.raises(LostRun):
        await old.step_started("log", "action", 1, {})
    with pytest.raises(LostRun):
        await old.finish("succeeded", {"stale": True}, None)

    run = await pool.fetchrow("SELECT * FROM workflow_runs WHERE id = $1", message.run_id)
    assert run is not None
    assert (run["status"], run["attempt"], run["output"], run["executor_id"]) == (
        "running",
        2,
        None,
        "new",
    )
    steps = await steps_of(pool, message.run_id)
    assert set(steps) == {"call"}
    assert (steps["call"]["status"], steps["call"]["output"]) == ("running", None)
    # The current owner's writes go through.
    await store.RunStore(pool, second).finish("succeeded", {}, None)


async def test_a_redelivered_run_resumes_after_its_last_succeeded_step(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"n": 1})

    async def second(request: web.Request) -> web.Response:
        return web.json_response({"got": (await request.json())["n"]})

    remote.route("GET", "/count", count)
    remote.route("POST", "/second", second)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {
                "id": "first",
                "type": "action",
                "action": "http_request",
                "config": {"url": "{{ input.base }}/count"},
            },
            {
                "id": "then",
                "type": "action",
                "action": "http_request",
                "config": {
                    "method": "POST",
                    "url": "{{ input.base }}/second",
                    "json": {"n": "{{ nodes.first.output.body.n + 1 }}"},
                },
            },
        ],
        "edges": [{"from": "start", "to": "first"}, {"from": "first", "to": "then"}],
    }
    async with serving(remote):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(
            pool,
            org.id,
            workflow_id,
            run_input={"base": remote.base_url},
            status="running",
            attempt=1,
        )
        # What a replica that died after the first step left behind.
        await pool.execute(
            "INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt, output)"
            " VALUES ($1, $2, 'first', 'action', 'succeeded', 1, $3)",
            message.run_id,
            org.id,
            {"status": 200, "body": {"n": 41}},
        )
        await publish(pool, js, topology, message)
        await nak_first_delivery(js, topology)
        async with running_executor(settings, pool, js):
            run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 2
    assert remote.hits["/count"] == 0
    assert remote.hits["/second"] == 1
    assert run["output"]["then"]["body"] == {"got": 42}


async def test_max_deliveries_fail_the_run_and_dead_letter_it(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    await ensure_topology(js, topology, ack_wait_s=settings.executor_ack_wait_s, max_deliver=1)
    workflow_id = await create_workflow(pool, org.id, blocking_graph())
    message = await create_run(pool, org.id, workflow_id)
    await store.log(pool, message.run_id, org.id, "error", "executor error: database went away")
    await publish(pool, js, topology, message)
    await nak_first_delivery(js, topology)
    async with running_executor(settings, pool, js, executor_max_deliver=1):
        run = await wait_for_status(pool, message.run_id)
        await wait_for(lambda: _messages_left(js, topology.runs_stream, 0), message="acked")

    assert run["status"] == "failed"
    assert run["error"] == "gave up after 1 deliveries: executor error: database went away"
    dead = await js.get_last_msg(topology.dlq_stream, topology.dlq_subject(org.id, workflow_id))
    assert dead.data == message.to_bytes()
    assert dead.headers is not None
    assert dead.headers["Flowcron-Error"] == run["error"]


async def test_an_unreadable_message_is_terminated_and_dead_lettered(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    body = b'{"org_id": "o1", "workflow_id": "w1", "run_id": "not-a-uuid"}'
    await js.publish(topology.run_subject("o1", "w1"), body, stream=topology.runs_stream)
    async with running_executor(settings, pool, js):
        await wait_for(lambda: _messages_left(js, topology.dlq_stream, 1), message="dead letter")
        await wait_for(lambda: _messages_left(js, topology.runs_stream, 0), message="terminated")
    dead = await js.get_last_msg(topology.dlq_stream, topology.dlq_subject("o1", "w1"))
    assert dead.data == body
    assert dead.headers is not None and "unreadable" in dead.headers["Flowcron-Error"]


async def test_drain_hands_unfinished_runs_back_to_be_resumed(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    release = asyncio.Event()
    remote = blocking_remote(release)
    async with serving(remote):
        workflow_id = await create_workflow(pool, org.id, blocking_graph())
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/block"}
        )
        await publish(pool, js, topology, message)
        async with running_executor(settings, pool, js, executor_drain_s=0.2):
            await wait_for(lambda: _hits(remote, "/block", 1), message="the first call")
        # Drained: the run stays running, its message is back in the stream.
        row = await pool.fetchrow(
            "SELECT status, attempt FROM workflow_runs WHERE id = $1", message.run_id
        )
        assert row is not None
        assert (row["status"], row["attempt"]) == ("running", 1)
        release.set()
        async with running_executor(settings, pool, js):
            run = await wait_for_status(pool, message.run_id)
    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 2
    steps = await steps_of(pool, message.run_id)
    assert steps["call"]["output"]["body"] == {"n": 2}


async def test_a_replica_fetches_only_as_many_runs_as_it_has_free_slots(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    release = asyncio.Event()
    remote = blocking_remote(release)
    async with serving(remote), running_executor(settings, pool, js, executor_concurrency=1):
        workflow_id = await create_workflow(pool, org.id, blocking_graph())
        messages = [
            await create_run(
                pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/block"}
            )
            for _ in range(2)
        ]
        for message in messages:
            await publish(pool, js, topology, message)
        await wait_for(lambda: _hits(remote, "/block", 1), message="the first call")
        info = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
        # One run in flight; the other stays in the stream for another replica to take.
        assert (info.num_ack_pending, info.num_pending) == (1, 1)
        release.set()
        runs = [await wait_for_status(pool, m.run_id) for m in messages]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]


async def _hits(remote: Remote, path: str, count: int) -> bool:
    return remote.hits[path] >= count


async def _messages_left(js: JetStreamContext, stream: str, count: int) -> bool:
    return await stream_messages(js, stream) == count
