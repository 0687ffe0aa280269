"""A small HTTP endpoint for a service without an API: ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)


def metrics_app(registry: CollectorRegistry = REGISTRY) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


@asynccontextmanager
async def serve_metrics(host: str, port: int) -> AsyncIterator[None]:
    """Serve the default registry on ``host:port`` for the block; port 0 serves nothing."""
    if not port:
        yield
        return
    runner = web.AppRunner(metrics_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("metrics endpoint listening", port=port)
    try:
        yield
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_metrics_if_free(host: str, port: int, setting: str) -> AsyncIterator[None]:
    """:func:`serve_metrics`, except that a port already taken (several replicas on one
    host with the same ``setting``) is logged and the service runs without the
    endpoint: a scrape target must never stop schedules firing or runs executing."""
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(serve_metrics(host, port))
        except OSError as exc:
            log.error(
                "metrics endpoint not started; running without it (give each replica on"
                f" one host its own {setting}, or 0)",
                port=port,
                error=str(exc),
            )
        yield
