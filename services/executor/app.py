"""The executor service: wiring of pool, NATS, HTTP session and the consumer.

:func:`serve` is what ``python -m services.executor`` runs. :class:`Executor` is the
same machinery on resources someone else opened; tests run it in-process as a
background task and set ``stop`` to end it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from contextlib import AbstractAsyncContextManager

import aiohttp
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.executor.consumer import Consumer
from services.executor.handler import RunHandler
from shared.control import cancel_wildcard
from shared.db.pool import Pool, open_pool
from shared.egress import EgressResolver
from shared.heap import settle_heap
from shared.messaging.connection import open_nats
from shared.messaging.topology import Topology, ensure_topology
from shared.metrics_server import serve_metrics_if_free
from shared.settings import Settings

log = structlog.get_logger(__name__)


def new_executor_id() -> str:
    """``host:pid:random``, written to ``workflow_runs.executor_id`` on claim."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Executor:
    """Consumes and executes runs on the given resources until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        js: JetStreamContext,
        http: aiohttp.ClientSession,
        *,
        nc: Client,
        executor_id: str | None = None,
        writes: Pool | None = None,
    ) -> None:
        self.executor_id = executor_id or new_executor_id()
        self._nc = nc
        self._namespace = settings.namespace
        self.handler = RunHandler(
            settings, pool, js, http, executor_id=self.executor_id, nc=nc, writes=writes
        )
        self.consumer = Consumer(js, settings, self.handler.handle)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen for cancel requests, consume until ``stop``, then drain: in-flight runs
        (consumer), then held runs (offered again at once)."""
        with structlog.contextvars.bound_contextvars(executor_id=self.executor_id):
            await self.handler.load_limits()
            control = await self._nc.subscribe(cancel_wildcard(self._namespace), cb=self._on_cancel)
            try:
                await self.consumer.run(stop)
            finally:
                await control.unsubscribe()
                await self.handler.holds.close()

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            run_id = uuid.UUID(msg.subject.rsplit(".", 1)[-1])
        except ValueError:
            log.warning("cancel request for a malformed run id", subject=msg.subject)
            return
        if self.handler.request_cancel(run_id):
            log.info("cancelling run on request", run_id=str(run_id))


def executor_pool(
    settings: Settings, *, async_commit: bool = False
) -> AbstractAsyncContextManager[Pool]:
    return open_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        async_commit=async_commit,
        # Writes of many runs share a statement: a row lock held elsewhere must fail that
        # statement (its writes then go one by one) rather than stall every run.
        lock_timeout_s=settings.executor_lock_timeout_s,
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Open every resource, execute runs until ``stop``, drain, close in reverse order.

    With ``executor_step_commit = async`` claims, step writes and logs go through a
    second pool whose commits do not wait for the WAL flush; the final status (on the
    main pool) does, and so flushes every write of the run made before it.
    """
    async with (
        executor_pool(settings) as pool,
        executor_pool(settings, async_commit=settings.executor_step_commit == "async") as writes,
        open_nats(settings.nats_servers, name="flowcron-executor") as nc,
        aiohttp.ClientSession(
            raise_for_status=False,
            connector=aiohttp.TCPConnector(resolver=EgressResolver(settings.egress)),
        ) as http,
        serve_metrics_if_free(
            settings.api_host, settings.executor_metrics_port, "FLOWCRON_EXECUTOR_METRICS_PORT"
        ),
    ):
        js = nc.jetstream()
        await ensure_topology(
            js,
            Topology(settings.namespace),
            ack_wait_s=settings.executor_ack_wait_s,
            max_deliver=settings.executor_max_deliver,
        )
        executor = Executor(settings, pool, js, http, nc=nc, writes=writes)
        settle_heap()
        await executor.run(stop)
        log.info("closing the HTTP session, NATS and the database pool")
