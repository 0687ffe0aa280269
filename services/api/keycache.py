"""API keys cached in memory, dropped the moment any key changes.

Looking a key up costs a query per request; keys change rarely. Each API process keeps
the principals it has resolved while it LISTENs on ``flowcron_api_keys``, which a
trigger (migration 0005) notifies whenever a key is revoked, deleted or changed, by the
API, the CLI or plain SQL: the whole cache is dropped then. While the listening
connection is down nothing is cached (every request queries, as without a cache), and
a generation number keeps a lookup that raced a notification from caching what it read
before it. Entries also expire after ``ttl`` seconds, as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from services.api.keys import Principal

CHANNEL = "flowcron_api_keys"
_RETRY_S = 1.0

log = structlog.get_logger(__name__)


class KeyCache:
    def __init__(self, dsn: str, *, ttl: float = 60.0, max_entries: int = 10_000) -> None:
        self._dsn = dsn
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self._touched: dict[bytes, float] = {}
        self._conn: asyncpg.Connection | None = None
        self.generation = 0

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def get(self, key_hash: bytes) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or not self.listening:
            return None
        principal, stored = entry
        if time.monotonic() - stored > self._ttl:
            del self._entries[key_hash]
            return None
        return principal

    def put(self, key_hash: bytes, principal: Principal, generation: int) -> None:
        """Cache what a lookup started at ``generation`` read, unless a key changed since."""
        if generation != self.generation or not self.listening:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
            self._touched.clear()
        now = time.monotonic()
        self._entries[key_hash] = (principal, now)
        self._touched.setdefault(key_hash, now)

    def touch_due(self, key_hash: bytes, every: float = 60.0) -> bool:
        """True at most once per ``every`` seconds per key: time to write last_used_at."""
        now = time.monotonic()
        if now - self._touched.get(key_hash, -every) < every:
            return False
        self._touched[key_hash] = now
        return True

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def _changed(self, *_: Any) -> None:
        self.clear()

    def _lost(self, *_: Any) -> None:
        log.warning("api key listener lost; keys are looked up on every request until back")
        self._conn = None
        self.clear()

    async def listen(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.add_listener(CHANNEL, self._changed)
            conn.add_termination_listener(self._lost)
        except BaseException:
            await conn.close()
            raise
        self.clear()  # keys may have changed while nobody listened
        self._conn = conn

    async def keep_listening(self) -> None:
        """(Re)connect the listener whenever it is down; runs until cancelled."""
        while True:
            if not self.listening:
                try:
                    await self.listen()
                except Exception as exc:  # noqa: BLE001  # keep trying; uncached meanwhile
                    log.warning("cannot listen for api key changes", error=repr(exc))
            await asyncio.sleep(_RETRY_S)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.clear()
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)
            await conn.close()


KEY_CACHE = web.AppKey("key_cache", KeyCache)


@asynccontextmanager
async def key_cache(dsn: str) -> AsyncIterator[KeyCache]:
    cache = KeyCache(dsn)
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        await cache.listen()  # listening before the first request when Postgres answers
    task = asyncio.create_task(cache.keep_listening())
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await cache.close()
