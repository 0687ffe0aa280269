"""The system's own gauges on the API's ``/metrics``: runs, schedules, JetStream.

Read at scrape time and kept :data:`CACHE_S` seconds; concurrent scrapes share one
refresh, so a scrape storm costs one set of queries per period. Every organization is
counted (``/metrics`` is an operator endpoint). What each reading costs on a large
installation (1,000,000 runs, 10,000 schedules):

* ``flowcron_runs_active{status}`` — queued and running runs of any age: counts of the
  partial indexes ``workflow_runs_outbox`` and ``workflow_runs_workflow_running``,
  which hold only live runs.
* ``flowcron_runs_recent{status}`` — runs created in the last 24 hours by status: an
  index-only scan of that window of ``workflow_runs_org_created_stats`` (migration
  0004) per organization, as ``GET /api/stats`` does; older runs are not read.
* ``flowcron_schedules{state}`` (``enabled`` | ``paused``) and
  ``flowcron_schedules_due`` (enabled, fire time passed, not fired yet: the
  scheduler's backlog, through the ``workflow_schedules_due`` index).
* ``flowcron_jetstream_stream_messages{stream}``, ``..._stream_bytes{stream}`` for the
  runs, events and dead-letter streams, and ``flowcron_jetstream_consumer_pending``,
  ``..._ack_pending``, ``..._redelivered`` ``{stream, consumer}`` for ``executors``:
  four JetStream info requests.
* ``flowcron_system_metrics_up{source}`` (``postgres`` | ``nats``): 1 when the last
  refresh read that source. A source that fails is logged and its gauges are left out
  (rather than served stale) until a refresh reads it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from nats.js import JetStreamContext
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology

log = structlog.get_logger(__name__)

CACHE_S = 5.0
TIMEOUT_S = 2.0  # per source: a scrape answers even when a server hangs
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")

_ACTIVE = """
SELECT (SELECT count(*) FROM workflow_runs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM workflow_runs WHERE status = 'running') AS running
"""
# One index range per organization (the stats index leads with org_id).
_RECENT = """
SELECT r.status, count(*) AS runs
  FROM organizations o
 CROSS JOIN LATERAL (
       SELECT status FROM workflow_runs
        WHERE org_id = o.id AND created_at >= now() - interval '24 hours') r
 GROUP BY r.status
"""
_SCHEDULES = """
SELECT count(*) FILTER (WHERE enabled) AS enabled,
       count(*) FILTER (WHERE NOT enabled) AS paused,
       (SELECT count(*) FROM workflow_schedules
         WHERE enabled AND next_run_at <= clock_timestamp()) AS due
  FROM workflow_schedules
"""


@dataclass
class Snapshot:
    """One refresh's readings; a source that failed has empty fields."""

    active: dict[str, int] = field(default_factory=dict)
    recent: dict[str, int] = field(default_factory=dict)
    schedules: dict[str, int] = field(default_factory=dict)
    streams: dict[str, tuple[int, int]] = field(default_factory=dict)  # messages, bytes
    consumer: dict[str, int] = field(default_factory=dict)
    up: dict[str, bool] = field(default_factory=dict)


class SystemMetrics(Collector):
    """A collector serving the last :class:`Snapshot`; :meth:`refresh` before a scrape."""

    def __init__(self, cache_s: float = CACHE_S) -> None:
        self.cache_s = cache_s
        self.refreshes = 0  # how many refreshes read the servers (tests, debugging)
        self._snapshot = Snapshot()
        self._taken_at = float("-inf")
        self._lock = asyncio.Lock()

    def expire(self) -> None:
        """The next refresh reads the servers whatever the cache's age."""
        self._taken_at = float("-inf")

    async def refresh(self, pool: Pool, js: JetStreamContext, topology: Topology) -> None:
        """Read Postgres and JetStream unless the snapshot is younger than ``cache_s``."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # another scrape refreshed it while this one waited
                return
            snapshot = Snapshot()
            await asyncio.gather(_postgres(pool, snapshot), _jetstream(js, topology, snapshot))
            self._snapshot, self._taken_at = snapshot, time.monotonic()
            self.refreshes += 1

    def _fresh(self) -> bool:
        return time.monotonic() - self._taken_at < self.cache_s

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot
        up = GaugeMetricFamily(
            "flowcron_system_metrics_up",
            "1 when the last refresh of these gauges read the source.",
            labels=["source"],
        )
        for source in ("postgres", "nats"):
            up.add_metric([source], float(snap.up.get(source, False)))
        yield up
        if snap.up.get("postgres"):
            yield from _postgres_families(snap)
        if snap.up.get("nats"):
            yield from _jetstream_families(snap)


async def _postgres(pool: Pool, snap: Snapshot) -> None:
    try:
        async with asyncio.timeout(TIMEOUT_S), pool.acquire() as conn:
            (active,) = await conn.fetch(_ACTIVE)  # aggregates: one row each
            recent = await conn.fetch(_RECENT)
            (schedules,) = await conn.fetch(_SCHEDULES)
    except Exception as exc:  # noqa: BLE001  # reported as up=0 and a warning, never a 500
        log.warning("system metrics: Postgres not read", error=repr(exc))
        return
    snap.active = {"queued": active["queued"], "running": active["running"]}
    snap.recent = dict.fromkeys(RUN_STATUSES, 0) | {r["status"]: r["runs"] for r in recent}
    snap.schedules = dict(schedules)
    snap.up["postgres"] = True


async def _jetstream(js: JetStreamContext, topology: Topology, snap: Snapshot) -> None:
    streams = (topology.runs_stream, topology.events_stream, topology.dlq_stream)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            infos = await asyncio.gather(*(js.stream_info(s) for s in streams))
            consumer = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
    except Exception as exc:  # noqa: BLE001  # reported as up=0 and a warning, never a 500
        log.warning("system metrics: JetStream not read", error=repr(exc))
        return
    snap.streams = {
        name: (info.state.messages, info.state.bytes)
        for name, info in zip(streams, infos, strict=True)
    }
    snap.consumer = {
        "pending": consumer.num_pending or 0,
        "ack_pending": consumer.num_ack_pending or 0,
        "redelivered": consumer.num_redelivered or 0,
    }
    snap.up["nats"] = True


def _postgres_families(snap: Snapshot) -> Iterable[Metric]:
    active = GaugeMetricFamily(
        "flowcron_runs_active", "Runs queued or running now, of any age.", labels=["status"]
    )
    for status, count in snap.active.items():
        active.add_metric([status], count)
    recent = GaugeMetricFamily(
        "flowcron_runs_recent",
        "Runs created in the last 24 hours, by their status now.",
        labels=["status"],
    )
    for status, count in snap.recent.items():
        recent.add_metric([status], count)
    schedules = GaugeMetricFamily(
        "flowcron_schedules", "Schedules by state (paused = disabled).", labels=["state"]
    )
    for state in ("enabled", "paused"):
        schedules.add_metric([state], snap.schedules[state])
    due = GaugeMetricFamily(
        "flowcron_schedules_due",
        "Enabled schedules whose fire time has passed and that have not fired yet.",
        value=snap.schedules["due"],
    )
    yield from (active, recent, schedules, due)


def _jetstream_families(snap: Snapshot) -> Iterable[Metric]:
    messages = GaugeMetricFamily(
        "flowcron_jetstream_stream_messages", "Messages stored in the stream.", labels=["stream"]
    )
    size = GaugeMetricFamily(
        "flowcron_jetstream_stream_bytes", "Bytes stored in the stream.", labels=["stream"]
    )
    for stream, (count, nbytes) in snap.streams.items():
        messages.add_metric([stream], count)
        size.add_metric([stream], nbytes)
    yield from (messages, size)
    stream = next(iter(snap.streams))  # the runs stream carries the executors consumer
    helps = {
        "pending": "Messages not yet delivered to any executor.",
        "ack_pending": "Messages delivered and not yet acknowledged (runs executing).",
        "redelivered": "Messages delivered more than once and not yet acknowledged.",
    }
    for key, text in helps.items():
        family = GaugeMetricFamily(
            f"flowcron_jetstream_consumer_{key}", text, labels=["stream", "consumer"]
        )
        family.add_metric([stream, EXECUTORS_CONSUMER], snap.consumer[key])
        yield family
