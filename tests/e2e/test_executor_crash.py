"""Three executor processes; the one holding a run is killed with SIGKILL during a
``delay`` step. The run finishes on another replica, and the HTTP step before the delay
ran exactly once (counted by a local server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    Remote,
    create_run,
    create_workflow,
    publish,
    serving,
    steps_of,
    wait_for_status,
)
from tests.servers import Servers
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
ACK_WAIT_S = 2
REPLICAS = 3


@pytest.fixture
def settings(database_url: str, servers: Servers, namespace: str) -> Settings:
    """A short ack deadline, so the killed replica's run is redelivered quickly."""
    return Settings(
        database_url=database_url,
        nats_url=servers.nats_url,
        namespace=namespace,
        log_format="console",
        log_level="warning",
        executor_ack_wait_s=ACK_WAIT_S,
    )


def start_executor(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWCRON_DATABASE_URL": settings.database_url,
        "FLOWCRON_NATS_URL": settings.nats_url,
        "FLOWCRON_NAMESPACE": settings.namespace,
        "FLOWCRON_EXECUTOR_ACK_WAIT_S": str(ACK_WAIT_S),
        "FLOWCRON_LOG_FORMAT": "console",
        "FLOWCRON_LOG_LEVEL": "info",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.executor"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def executors(settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [start_executor(settings, tmp_path / f"executor-{i}.log") for i in range(REPLICAS)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


GRAPH = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {
            "id": "call",
            "type": "action",
            "action": "http_request",
            "config": {"method": "POST", "url": "{{ input.base }}/count"},
        },
        {"id": "wait", "type": "action", "action": "delay", "config": {"seconds": 3}},
        {"id": "done", "type": "action", "action": "log_message", "config": {"message": "done"}},
    ],
    "edges": [
        {"from": "start", "to": "call"},
        {"from": "call", "to": "wait"},
        {"from": "wait", "to": "done"},
    ],
}


async def test_sigkill_during_a_delay_resumes_elsewhere_without_repeating_a_step(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org: Org,
    executors: list[subprocess.Popen[bytes]],
) -> None:
    remote = Remote()

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"n": remote.hits["/count"]})

    remote.route("POST", "/count", count)

    async def all_pulling() -> bool:
        info = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
        return (info.num_waiting or 0) >= REPLICAS

    await wait_for(all_pulling, timeout=30, message="three executors pulling")
    async with serving(remote):
        workflow_id = await create_workflow(pool, org.id, GRAPH)
        message = await create_run(pool, org.id, workflow_id, run_input={"base": remote.base_url})
        await publish(pool, js, topology, message)

        async def in_the_delay() -> Any:
            steps = await steps_of(pool, message.run_id)
            if "wait" not in steps or steps["wait"]["status"] != "running":
                return None
            return await pool.fetchval(
                "SELECT executor_id FROM workflow_runs WHERE id = $1", message.run_id
            )

        holder = await wait_for(in_the_delay, timeout=20, message="the delay step")
        pid = int(str(holder).split(":")[1])
        [victim] = [p for p in executors if p.pid == pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        run = await wait_for_status(pool, message.run_id, timeout=30)

    assert run["status"] == "succeeded", run["error"]
    assert remote.hits["/count"] == 1
    assert run["attempt"] == 2
    assert run["executor_id"] != holder
    assert int(run["executor_id"].split(":")[1]) in {p.pid for p in executors if p is not victim}
    steps = await steps_of(pool, message.run_id)
    assert {k: v["status"] for k, v in steps.items()} == dict.fromkeys(
        ("start", "call", "wait", "done"), "succeeded"
    )
    assert steps["call"]["attempt"] == 1
    assert steps["call"]["output"]["body"] == {"n": 1}
