"""The NATS connection, opened and closed in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import structlog
from nats.aio.client import Client

log = structlog.get_logger(__name__)


async def _on_error(exc: Exception) -> None:
    log.warning("nats error", error=str(exc))


async def _on_disconnect() -> None:
    log.warning("nats disconnected")


async def _on_reconnect() -> None:
    log.info("nats reconnected")


@asynccontextmanager
async def open_nats(servers: list[str], *, name: str) -> AsyncIterator[Client]:
    """Connect (reconnecting forever once connected) and drain on exit."""
    client = await nats.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=_on_error,
        disconnected_cb=_on_disconnect,
        reconnected_cb=_on_reconnect,
    )
    try:
        yield client
    finally:
        if not client.is_closed:
            await client.drain()
