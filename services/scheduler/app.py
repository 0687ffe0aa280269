"""Wires the scheduler: pool, NATS, topology, LISTEN connection, ticker."""

from __future__ import annotations

import asyncio

import structlog

from services.scheduler.ticker import Ticker
from services.scheduler.wakeup import listening
from shared.db.pool import open_pool
from shared.heap import settle_heap
from shared.messaging.connection import open_nats
from shared.messaging.pipeline import ack_pipeline
from shared.messaging.topology import Topology, ensure_topology
from shared.metrics_server import serve_metrics_if_free
from shared.settings import Settings

log = structlog.get_logger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the scheduler until ``stop`` is set.

    Shutdown: the loop finishes its cycle (a claim transaction either commits with its
    runs or rolls back), then the LISTEN connection, NATS and the pool close.
    """
    async with (
        open_pool(settings.database_url, min_size=1, max_size=settings.database_pool_max) as pool,
        open_nats(settings.nats_servers, name=f"flowcron-scheduler-{settings.namespace}") as nc,
        listening(settings.database_url) as wakeup,
        serve_metrics_if_free(
            settings.api_host, settings.scheduler_metrics_port, "FLOWCRON_SCHEDULER_METRICS_PORT"
        ),
        ack_pipeline(nc) as pipeline,
    ):
        js = nc.jetstream()
        await ensure_topology(
            js,
            Topology(settings.namespace),
            ack_wait_s=settings.executor_ack_wait_s,
            max_deliver=settings.executor_max_deliver,
        )
        log.info("scheduler ready")
        settle_heap()
        await Ticker(settings, pool, js, wakeup, nc=nc, pipeline=pipeline).run(stop)
        log.info("scheduler loop stopped; closing connections")
