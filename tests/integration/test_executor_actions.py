"""Actions against local servers: Slack webhook, SMTP, and a delay kept alive past the
ack deadline."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology, ensure_topology
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


def one_action(name: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {"id": "act", "type": "action", "action": name, "config": config, **extra},
        ],
        "edges": [{"from": "start", "to": "act"}],
    }


async def test_slack_message_posts_text_and_blocks_and_fails_on_non_2xx(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()

    async def hook(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def revoked(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no_service")

    remote.route("POST", "/hook", hook)
    remote.route("POST", "/revoked", revoked)
    config = {
        "webhook_url": "{{ input.base }}/hook",
        "text": "Run {{ run.id }} done",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}],
    }
    async with serving(remote), running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, one_action("slack_message", config))
        good = await create_run(pool, org.id, workflow_id, run_input={"base": remote.base_url})
        bad_flow = await create_workflow(
            pool,
            org.id,
            one_action("slack_message", {**config, "webhook_url": "{{ input.base }}/revoked"}),
        )
        bad = await create_run(pool, org.id, bad_flow, run_input={"base": remote.base_url})
        await publish(pool, js, topology, good)
        await publish(pool, js, topology, bad)
        good_run = await wait_for_status(pool, good.run_id)
        bad_run = await wait_for_status(pool, bad.run_id)

    assert good_run["status"] == "succeeded", good_run["error"]
    [(_, headers, body)] = [r for r in remote.requests if r[0] == "/hook"]
    assert body == {"text": f"Run {good.run_id} done", "blocks": config["blocks"]}
    assert headers["Idempotency-Key"] == f"{good.run_id}:act"
    assert bad_run["status"] == "failed"
    assert bad_run["error"] == "node 'act' failed: Slack webhook answered HTTP 404: no_service"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  # aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_send_delivers_through_smtp(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org: Org,
    smtp: tuple[_Inbox, int],
) -> None:
    inbox, port = smtp
    config = {
        "to": ["ops@example.com", "{{ input.also }}"],
        "from": "flowcron@example.com",
        "subject": "Report for {{ run.trigger }}",
        "text": "All good",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "tls": "none",
    }
    async with running_executor(settings, pool, js):
        workflow_id = await create_workflow(pool, org.id, one_action("email_send", config))
        message = await create_run(pool, org.id, workflow_id, run_input={"also": "dev@example.com"})
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)

    assert run["status"] == "succeeded", run["error"]
    [(recipients, content)] = inbox.messages
    assert recipients == ["ops@example.com", "dev@example.com"]
    mail = message_from_bytes(content)
    assert mail["Subject"] == "Report for manual"
    assert mail["Message-ID"] == f"<{message.run_id}.act@flowcron>"
    assert mail["Idempotency-Key"] == f"{message.run_id}:act"
    steps = await steps_of(pool, message.run_id)
    assert steps["act"]["output"]["accepted"] == recipients


async def test_a_delay_longer_than_the_ack_wait_is_kept_alive_and_runs_once(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    await ensure_topology(js, topology, ack_wait_s=0.6, max_deliver=settings.executor_max_deliver)
    graph = one_action("delay", {"seconds": 1.5})
    async with running_executor(settings, pool, js, executor_ack_wait_s=0.6):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(pool, org.id, workflow_id)
        await publish(pool, js, topology, message)
        run = await wait_for_status(pool, message.run_id)
        info = await js.consumer_info(topology.runs_stream, "executors")
    assert run["status"] == "succeeded", run["error"]
    assert run["attempt"] == 1  # never redelivered and claimed again
    assert info.num_redelivered == 0
    assert run["output"] == {"act": {"seconds": 1.5}}


async def test_a_run_cancelled_elsewhere_stops_at_its_next_write(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    release = asyncio.Event()
    remote = Remote()

    async def block(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    remote.route("GET", "/block", block)
    graph = {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {
                "id": "call",
                "type": "action",
                "action": "http_request",
                "config": {"url": "{{ input.url }}"},
            },
            {
                "id": "next",
                "type": "action",
                "action": "http_request",
                "config": {"url": "{{ input.url }}"},
            },
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "next"}],
    }
    async with (
        serving(remote),
        running_executor(settings, pool, js, executor_drain_s=0.5) as executor,
    ):
        workflow_id = await create_workflow(pool, org.id, graph)
        message = await create_run(
            pool, org.id, workflow_id, run_input={"url": f"{remote.base_url}/block"}
        )
        await publish(pool, js, topology, message)
        await wait_for_status(pool, message.run_id, ("running",))

        async def blocked() -> bool:
            return remote.hits["/block"] == 1

        await wait_for(blocked, message="first call")
        await pool.execute(
            "UPDATE workflow_runs SET status = 'cancelled', finished_at = now() WHERE id = $1",
            message.run_id,
        )
        release.set()

        async def stopped() -> bool:
            return executor.consumer.in_flight == 0

        await wait_for(stopped, message="the executor to let the run go")
    run = await wait_for_status(pool, message.run_id)
    assert run["status"] == "cancelled"
    assert remote.hits["/block"] == 1  # "next" never ran
    steps = await steps_of(pool, message.run_id)
    assert steps["call"]["status"] == "running"  # the fenced write was refused
    assert "next" not in steps


async def test_database_query_reads_rows_with_params_and_refuses_writes_when_read_only(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    read = one_action(
        "database_query",
        {
            "dsn": "{{ input.dsn }}",
            "query": "SELECT id, name, created_at FROM organizations WHERE id = $1::uuid",
            "params": ["{{ input.org }}"],
        },
    )
    write = one_action(
        "database_query",
        {"dsn": "{{ input.dsn }}", "query": "DELETE FROM organizations"},
        retry={"max_attempts": 3, "backoff_s": 0},
    )
    run_input = {"dsn": settings.database_url, "org": str(org.id)}
    async with running_executor(settings, pool, js):
        messages = [
            await create_run(
                pool, org.id, await create_workflow(pool, org.id, g), run_input=run_input
            )
            for g in (read, write)
        ]
        for message in messages:
            await publish(pool, js, topology, message)
        read_run, write_run = [await wait_for_status(pool, m.run_id) for m in messages]

    assert read_run["status"] == "succeeded", read_run["error"]
    [row] = read_run["output"]["act"]["rows"]
    assert row["id"] == str(org.id)
    assert isinstance(row["created_at"], str)
    assert write_run["status"] == "failed"
    assert "read-only transaction" in write_run["error"]
    assert settings.database_url not in write_run["error"]
    assert await pool.fetchval("SELECT count(*) FROM organizations") == 1
