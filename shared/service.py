"""The edge of every service process: settings, logging, signals, ``asyncio.run``.

``python -m services.X`` calls :func:`run_service` with the service's ``serve``
coroutine, which runs until the ``stop`` event is set (SIGTERM or SIGINT) and then
shuts down in its own stated steps.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
import uvloop

from shared.logging import configure_logging
from shared.settings import ConfigurationError, Settings, load_settings

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]


async def _main(serve: Serve, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def run_service(name: str, serve: Serve) -> int:
    """Run one service to completion; the process exit code is returned."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        sys.stderr.write(f"flowcron {name}: {exc}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(service=name)
    log = structlog.get_logger(name)
    log.info("starting", namespace=settings.namespace)
    # uvloop roughly halves the event loop's and asyncpg's CPU per run (bench/executor.py).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(_main(serve, settings))
    except (OSError, ConnectionError, asyncpg.PostgresError) as exc:
        # Unreachable servers, a database that does not exist, bad credentials:
        # one clear line rather than a traceback.
        log.error("cannot start: a server refused or is unreachable", error=str(exc))
        sys.stderr.write(f"flowcron {name}: cannot start: {exc}\n")
        return 1
    log.info("stopped")
    return 0
