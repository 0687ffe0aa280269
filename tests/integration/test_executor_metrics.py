"""The executor's Prometheus metrics: counted by real runs, served on their own port."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from flowcron.embedded import free_port
from services.executor.app import serve
from shared.db.pool import Pool
from shared.messaging.topology import Topology, ensure_topology
from shared.metrics_server import serve_metrics_if_free
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    create_run,
    create_workflow,
    publish,
    running_executor,
    wait_for_status,
)
from tests.integration.test_executor_delivery import nak_first_delivery
from tests.waiting import wait_for

OK_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "say", "type": "action", "action": "log_message", "config": {"message": "hi"}},
    ],
    "edges": [{"from": "start", "to": "say"}],
}
BROKEN_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "shape", "type": "transform", "config": {}},  # no value: the step fails
        {"id": "after", "type": "action", "action": "log_message", "config": {"message": "x"}},
    ],
    "edges": [{"from": "start", "to": "shape"}, {"from": "shape", "to": "after"}],
}
SLOW_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "wait", "type": "action", "action": "delay", "config": {"seconds": 0.5}},
    ],
    "edges": [{"from": "start", "to": "wait"}],
}


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class Deltas:
    """Metric values now, to compare with later ones (the registry is per process)."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self._before = {(n, tuple(sorted(lbl.items()))): sample(n, lbl) for n, lbl in series}

    def __call__(self, name: str, labels: dict[str, str] | None = None) -> float:
        key = (name, tuple(sorted((labels or {}).items())))
        return sample(name, labels) - self._before[key]


def steps(node_type: str, status: str) -> tuple[str, dict[str, str]]:
    return "flowcron_executor_steps_total", {"node_type": node_type, "status": status}


async def test_runs_steps_and_pickup_latency_are_counted(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    ok = await create_workflow(pool, org.id, OK_GRAPH)
    broken = await create_workflow(pool, org.id, BROKEN_GRAPH)
    messages = [
        await create_run(pool, org.id, ok),
        await create_run(pool, org.id, ok),
        await create_run(pool, org.id, broken),
    ]
    for message in messages:
        await publish(pool, js, topology, message)
    published = time.time()
    delta = Deltas(
        ("flowcron_executor_runs_started_total", {}),
        ("flowcron_executor_runs_finished_total", {"status": "succeeded"}),
        ("flowcron_executor_runs_finished_total", {"status": "failed"}),
        steps("trigger", "succeeded"),
        steps("action", "succeeded"),
        steps("transform", "failed"),
        steps("action", "cancelled"),
        ("flowcron_executor_step_duration_seconds_count", {"node_type": "action"}),
        ("flowcron_executor_step_duration_seconds_count", {"node_type": "transform"}),
        ("flowcron_executor_pickup_latency_seconds_count", {}),
        ("flowcron_executor_pickup_latency_seconds_sum", {}),
        ("flowcron_executor_redeliveries_total", {}),
    )
    async with running_executor(settings, pool, js, executor_concurrency=1) as executor:
        started = time.time()
        for message in messages:
            await wait_for_status(pool, message.run_id)
    assert executor.consumer.in_flight == 0

    assert delta("flowcron_executor_runs_started_total") == 3
    assert delta("flowcron_executor_runs_finished_total", {"status": "succeeded"}) == 2
    assert delta("flowcron_executor_runs_finished_total", {"status": "failed"}) == 1
    # Each trigger once, whether the claim recorded it (graph cached) or the engine did.
    assert delta(*steps("trigger", "succeeded")) == 3
    assert delta(*steps("action", "succeeded")) == 2
    assert delta(*steps("transform", "failed")) == 1
    assert delta(*steps("action", "cancelled")) == 1  # not run: the transform failed
    duration = "flowcron_executor_step_duration_seconds_count"
    assert delta(duration, {"node_type": "action"}) == 2
    assert delta(duration, {"node_type": "transform"}) == 1
    assert delta("flowcron_executor_pickup_latency_seconds_count") == 3
    # Every message waited at least from its publication to the executor's start.
    waited = delta("flowcron_executor_pickup_latency_seconds_sum")
    assert 3 * (started - published) - 0.1 <= waited < 30
    assert delta("flowcron_executor_redeliveries_total") == 0


async def test_runs_in_flight_is_a_gauge(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id, SLOW_GRAPH)
    baseline = sample("flowcron_executor_runs_in_flight")
    messages = [await create_run(pool, org.id, workflow_id) for _ in range(2)]
    async with running_executor(settings, pool, js):
        for message in messages:
            await publish(pool, js, topology, message)

        async def both_in_flight() -> bool:
            return sample("flowcron_executor_runs_in_flight") == baseline + 2

        await wait_for(both_in_flight, message="two runs in flight")
        for message in messages:
            await wait_for_status(pool, message.run_id)
    assert sample("flowcron_executor_runs_in_flight") == baseline


async def test_redeliveries_and_dead_letters_are_counted(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    await ensure_topology(js, topology, ack_wait_s=settings.executor_ack_wait_s, max_deliver=1)
    workflow_id = await create_workflow(pool, org.id, OK_GRAPH)
    message = await create_run(pool, org.id, workflow_id)
    await publish(pool, js, topology, message)
    await nak_first_delivery(js, topology)
    delta = Deltas(
        ("flowcron_executor_redeliveries_total", {}),
        ("flowcron_executor_dead_lettered_total", {}),
        ("flowcron_executor_runs_finished_total", {"status": "failed"}),
        ("flowcron_executor_runs_started_total", {}),
    )
    async with running_executor(settings, pool, js, executor_max_deliver=1):
        run = await wait_for_status(pool, message.run_id)
    assert run["status"] == "failed"
    assert delta("flowcron_executor_redeliveries_total") == 1
    assert delta("flowcron_executor_dead_lettered_total") == 1
    assert delta("flowcron_executor_runs_finished_total", {"status": "failed"}) == 1
    assert delta("flowcron_executor_runs_started_total") == 0


async def _scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_the_executor_serves_its_metrics_on_its_port(settings: Settings) -> None:
    port = free_port()
    stop = asyncio.Event()
    configured = settings.model_copy(update={"executor_metrics_port": port})
    task = asyncio.create_task(serve(configured, stop))

    async def scraped() -> str:
        try:
            return await _scrape(port)
        except aiohttp.ClientConnectionError:
            return ""

    try:
        text = await wait_for(scraped, message="the executor's /metrics")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    for name in (
        "flowcron_executor_runs_started_total",
        "flowcron_executor_runs_in_flight",
        "flowcron_executor_pickup_latency_seconds_bucket",
        "process_cpu_seconds_total",
    ):
        assert name in text


async def test_a_taken_port_is_logged_and_port_zero_serves_nothing() -> None:
    SETTING = "FLOWCRON_EXECUTOR_METRICS_PORT"  # noqa: N806
    port = free_port()
    with capture_logs() as logs:
        async with (
            serve_metrics_if_free("127.0.0.1", port, SETTING),
            serve_metrics_if_free("127.0.0.1", port, SETTING),  # a second replica, same port
        ):
            assert "flowcron_executor" in await _scrape(port)
    assert [e["port"] for e in logs if "not started" in e["event"]] == [port]
    async with serve_metrics_if_free("127.0.0.1", 0, SETTING):
        pass  # nothing bound, nothing logged
