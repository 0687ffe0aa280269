"""The API's /metrics serves the system's own gauges: runs, schedules, JetStream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from services.api.metrics import METRICS
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from tests.conftest import Org
from tests.integration.executor_helpers import create_run, create_schedule, create_workflow
from tests.integration.test_api_support import Client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(api: Client) -> Samples:
    resp = await api.get("/metrics")  # open, like /healthz
    assert resp.status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await resp.text())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def _runs(pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID, **counts: int) -> None:
    for status, count in counts.items():
        for _ in range(count):
            await create_run(pool, org_id, workflow_id, status=status)


async def _state(pool: Pool, org: Org, other_org: Org) -> None:
    """Runs of two organizations, one older than a day, and schedules in each state."""
    mine = await create_workflow(pool, org.id, {"name": "a"})
    theirs = await create_workflow(pool, other_org.id, {"name": "b"})
    await _runs(pool, org.id, mine, queued=2, running=1, succeeded=3, failed=1)
    await _runs(pool, other_org.id, theirs, queued=1, cancelled=1, timed_out=1)
    # Two days old: still active (queued), no longer recent.
    old = await create_run(pool, org.id, mine, status="queued")
    await pool.execute(
        "UPDATE workflow_runs SET created_at = now() - interval '2 days' WHERE id = $1",
        old.run_id,
    )
    due = await create_schedule(pool, org.id, mine)  # next_run_at: set below
    later = await create_schedule(pool, org.id, mine)
    paused_due = await create_schedule(pool, other_org.id, theirs)
    await pool.execute(
        "UPDATE workflow_schedules SET next_run_at = now() - interval '1 minute'"
        " WHERE id = ANY($1::uuid[])",
        [due, paused_due],
    )
    await pool.execute(
        "UPDATE workflow_schedules SET next_run_at = now() + interval '1 hour' WHERE id = $1",
        later,
    )
    await pool.execute("UPDATE workflow_schedules SET enabled = false WHERE id = $1", paused_due)


async def _queue(js: JetStreamContext, topology: Topology) -> None:
    """Three run messages (one delivered twice, unacked), an event, a dead letter."""
    # The first message is alone on the stream while it is nak'd, so the next pull can
    # only be its redelivery (with the others there, JetStream may hand out seq 2 first).
    await js.publish(topology.run_subject("o", "w"), b"run 0")
    sub = await js.pull_subscribe(
        f"{topology.namespace}.runs.>", durable=EXECUTORS_CONSUMER, stream=topology.runs_stream
    )
    [first] = await sub.fetch(1, timeout=5)
    await first.nak()
    [again] = await sub.fetch(1, timeout=5)
    assert again.metadata.num_delivered == 2  # held unacked: ack pending, redelivered
    await sub.unsubscribe()
    for n in (1, 2):
        await js.publish(topology.run_subject("o", "w"), f"run {n}".encode())
    await js.publish(f"{topology.namespace}.events.r.run.started", b"{}")
    await js.publish(topology.dlq_subject("o", "w"), b"dead")


async def test_metrics_count_runs_schedules_and_jetstream(
    api: Client, pool: Pool, org: Org, other_org: Org, js: JetStreamContext, topology: Topology
) -> None:
    await _state(pool, org, other_org)
    await _queue(js, topology)
    samples = await scrape(api)

    assert value(samples, "flowcron_system_metrics_up", source="postgres") == 1
    assert value(samples, "flowcron_system_metrics_up", source="nats") == 1
    assert value(samples, "flowcron_runs_active", status="queued") == 4
    assert value(samples, "flowcron_runs_active", status="running") == 1
    recent = {
        "queued": 3,
        "running": 1,
        "succeeded": 3,
        "failed": 1,
        "cancelled": 1,
        "timed_out": 1,
    }
    for status, count in recent.items():
        assert value(samples, "flowcron_runs_recent", status=status) == count, status
    assert value(samples, "flowcron_schedules", state="enabled") == 2
    assert value(samples, "flowcron_schedules", state="paused") == 1
    assert value(samples, "flowcron_schedules_due") == 1  # the paused one is not due

    stream_messages = {topology.runs_stream: 3, topology.events_stream: 1, topology.dlq_stream: 1}
    for stream, count in stream_messages.items():
        assert value(samples, "flowcron_jetstream_stream_messages", stream=stream) == count
        assert value(samples, "flowcron_jetstream_stream_bytes", stream=stream) > 0
    consumer = {"stream": topology.runs_stream, "consumer": "executors"}
    assert value(samples, "flowcron_jetstream_consumer_pending", **consumer) == 2
    assert value(samples, "flowcron_jetstream_consumer_ack_pending", **consumer) == 1
    assert value(samples, "flowcron_jetstream_consumer_redelivered", **consumer) == 1
    # The request metrics are still there (this scrape counted the previous one).
    again = await scrape(api)
    assert value(again, "flowcron_api_requests_total", method="GET", route="/metrics", status="200")


async def test_scrapes_share_a_cached_reading(api: Client, pool: Pool, org: Org) -> None:
    system = api.app[METRICS].system
    workflow_id = await create_workflow(pool, org.id, {"name": "a"})
    await create_run(pool, org.id, workflow_id)
    before = system.refreshes
    storm = await asyncio.gather(*(scrape(api) for _ in range(20)))
    assert system.refreshes == before + 1  # twenty scrapes, one set of queries
    assert {value(s, "flowcron_runs_active", status="queued") for s in storm} == {1}

    await create_run(pool, org.id, workflow_id)
    cached = await scrape(api)
    assert value(cached, "flowcron_runs_active", status="queued") == 1  # within CACHE_S
    system.expire()
    fresh = await scrape(api)
    assert value(fresh, "flowcron_runs_active", status="queued") == 2


async def test_an_unreachable_source_is_reported_not_a_500(
    api: Client, js: JetStreamContext, topology: Topology
) -> None:
    await js.delete_stream(topology.dlq_stream)  # JetStream answers, but not completely
    api.app[METRICS].system.expire()
    samples = await scrape(api)
    assert value(samples, "flowcron_system_metrics_up", source="nats") == 0
    assert value(samples, "flowcron_system_metrics_up", source="postgres") == 1
    names: set[Any] = {name for name, _ in samples}
    assert "flowcron_jetstream_stream_messages" not in names
    assert "flowcron_runs_active" in names
