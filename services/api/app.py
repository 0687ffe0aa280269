"""The API's application factory and its ``serve`` loop.

``create_app(settings)`` wires everything: resources (the Postgres pool, the NATS
connection and its JetStream topology) are opened and closed by ``cleanup_ctx`` and
kept under typed keys (:mod:`services.api.keys`); middlewares run outermost first:
access log, metrics, problem details, authentication. Each route module exposes a
``routes`` table, added in :data:`ROUTE_MODULES` order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import nats.errors
import structlog
from aiohttp import web

from services.api import metrics, openapi
from services.api.accesslog import access_log_middleware
from services.api.auth import auth_middleware
from services.api.coalesce import COALESCER, Coalescer, coalesce_middleware
from services.api.keycache import KEY_CACHE, key_cache
from services.api.keys import JETSTREAM, NATS, POOL, SETTINGS, TOPOLOGY
from services.api.metrics import METRICS, ApiMetrics, metrics_middleware
from services.api.problems import problem_middleware
from services.api.routes import (
    cron,
    dashboard,
    events,
    health,
    keys,
    queues,
    runs,
    schedules,
    secrets,
    stats,
    workflows,
)
from services.api.triggers import MARKS_POOL, TRIGGERS, WRITERS, TriggerBatcher
from shared.db.pool import open_pool
from shared.heap import settle_heap
from shared.messaging.connection import open_nats
from shared.messaging.pipeline import ack_pipeline
from shared.messaging.topology import Topology, ensure_topology
from shared.settings import Settings

log = structlog.get_logger("services.api")


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    ) as pool:
        app[POOL] = pool
        async with open_pool(
            settings.database_url, min_size=1, max_size=WRITERS, async_commit=True
        ) as marks:
            app[MARKS_POOL] = marks
            yield


async def _key_cache(app: web.Application) -> AsyncIterator[None]:
    async with key_cache(app[SETTINGS].database_url) as cache:
        app[KEY_CACHE] = cache
        yield


async def _nats(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_nats(settings.nats_servers, name="flowcron-api") as client:
        js = client.jetstream()
        await ensure_topology(
            js,
            app[TOPOLOGY],
            ack_wait_s=settings.executor_ack_wait_s,
            max_deliver=settings.executor_max_deliver,
        )
        app[NATS] = client
        app[JETSTREAM] = js
        async with ack_pipeline(client) as pipeline:
            app[TRIGGERS] = TriggerBatcher(app[POOL], app[MARKS_POOL], pipeline, app[TOPOLOGY])
            yield


ROUTE_MODULES = (
    health,
    metrics,
    openapi,
    workflows,
    schedules,
    runs,
    events,
    stats,
    cron,
    keys,
    secrets,
    queues,
    dashboard,
)


def create_app(settings: Settings) -> web.Application:
    """A new application; nothing is connected until it starts."""
    app = web.Application(
        client_max_size=settings.api_max_body_bytes,
        middlewares=[
            access_log_middleware,
            metrics_middleware,
            problem_middleware,
            auth_middleware,
            coalesce_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[TOPOLOGY] = Topology(settings.namespace)
    app[METRICS] = ApiMetrics.create()
    app[COALESCER] = Coalescer(enabled=settings.api_coalesce_reads)
    app[stats.CACHE] = {}
    app.cleanup_ctx.extend([_postgres, _key_cache, _nats])
    app[events.STREAMS] = set()
    app.on_startup.append(openapi.build_on_startup)
    app.on_shutdown.append(events.close_streams)
    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes)
    return app


async def _start(runner: web.AppRunner, stop: asyncio.Event) -> bool:
    """Open the resources; False when ``stop`` is set first.

    Connecting waits for servers that do not answer yet, so a SIGTERM must be able to
    end the wait, or a service started before its servers could not be stopped.
    """
    setup = asyncio.ensure_future(runner.setup())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({setup, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not setup.done():
        setup.cancel()
        await asyncio.wait({setup})
        log.info("stopped while connecting to Postgres and NATS")
        return False
    try:
        setup.result()
    except (asyncpg.PostgresError, nats.errors.Error) as exc:
        # run_service reports ConnectionError as one line ("a server is unreachable").
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    return True


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Listen on ``api_host:api_port`` until ``stop`` is set, then clean up.

    Shutdown: stop listening, let open requests finish (aiohttp's shutdown timeout),
    then close NATS (drained) and the pool, in reverse order of opening.
    """
    # handler_cancellation: a handler whose client went away is cancelled (an event
    # stream ends at once; an abandoned read stops using a connection).
    runner = web.AppRunner(
        create_app(settings), access_log=None, handle_signals=False, handler_cancellation=True
    )
    try:
        if not await _start(runner, stop):
            return
        settle_heap()
        site = web.TCPSite(
            runner,
            settings.api_host,
            settings.api_port,
            reuse_port=settings.api_reuse_port or None,
        )
        await site.start()
        log.info("listening", address=f"http://{settings.api_host}:{settings.api_port}")
        await stop.wait()
        log.info("stopping: closing the listener, finishing open requests")
    finally:
        await runner.cleanup()
