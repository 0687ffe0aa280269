"""FLOWCRON_EGRESS=public: workflows cannot reach private or loopback addresses."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
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


def fetch_graph(url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {"id": "fetch", "type": "action", "action": "http_request", "config": {"url": url}},
        ],
        "edges": [{"from": "start", "to": "fetch"}],
    }


async def ok(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def test_public_egress_refuses_loopback_and_the_metadata_endpoint(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()
    remote.route("GET", "/secret", ok)
    async with serving(remote):
        targets = [f"{remote.base_url}/secret", "http://169.254.169.254/latest/meta-data/"]
        runs = []
        for url in targets:
            workflow_id = await create_workflow(pool, org.id, fetch_graph(url))
            runs.append(await create_run(pool, org.id, workflow_id))
        async with running_executor(settings, pool, js, egress="public"):
            for message in runs:
                await publish(pool, js, topology, message)
            for message in runs:
                run = await wait_for_status(pool, message.run_id)
                assert run["status"] == "failed"
                step = (await steps_of(pool, message.run_id))["fetch"]
                assert "not a public address" in step["error"]
    assert remote.hits["/secret"] == 0  # nothing was sent


async def test_any_egress_reaches_loopback(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    remote = Remote()
    remote.route("GET", "/ok", ok)
    async with serving(remote):
        workflow_id = await create_workflow(pool, org.id, fetch_graph(f"{remote.base_url}/ok"))
        message = await create_run(pool, org.id, workflow_id)
        async with running_executor(settings, pool, js):
            await publish(pool, js, topology, message)
            run = await wait_for_status(pool, message.run_id)
    assert run["status"] == "succeeded"
    assert remote.hits["/ok"] == 1
