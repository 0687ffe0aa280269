"""LISTEN/NOTIFY: schedulers sleep until the next fire, and wake when schedules change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog

CHANNEL = "flowcron_schedules"  # notified by a trigger on workflow_schedules

log = structlog.get_logger(__name__)


class Wakeup:
    """An event set by every NOTIFY on the schedules channel."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    def _notified(self, *_: Any) -> None:
        self.event.set()

    def _lost(self, *_: Any) -> None:
        log.warning("listen connection lost; relying on the sleep cap until it is back")
        self._conn = None

    async def ensure(self, dsn: str) -> None:
        """(Re)connect the listening connection if needed; never raises."""
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(dsn)
            await conn.add_listener(CHANNEL, self._notified)
            conn.add_termination_listener(self._lost)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot listen for schedule changes", error=str(exc))
            return
        self._conn = conn
        # Something may have changed while we were not listening.
        self.event.set()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)  # closing it is not losing it
            await conn.close()

    async def wait(self, timeout: float, stop: asyncio.Event) -> None:
        """Sleep up to ``timeout`` seconds, less if notified or stopped.

        The event is not cleared here: the caller clears it *before* it reads the
        schedules, so a change made while it was reading still cuts the sleep short.
        """
        if timeout <= 0 or self.event.is_set():
            return
        waiters = [asyncio.ensure_future(self.event.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


@asynccontextmanager
async def listening(dsn: str) -> AsyncIterator[Wakeup]:
    wakeup = Wakeup()
    await wakeup.ensure(dsn)
    try:
        yield wakeup
    finally:
        await wakeup.close()
