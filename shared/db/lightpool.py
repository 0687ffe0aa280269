"""A connection pool with a short path from a query to a connection and back.

asyncpg's ``Pool`` costs about as much client CPU per query as the query itself (timers
for idle connections, shielded releases, a reset per release): measured here, 140–230
µs per ``pool.fetchval("SELECT 1")`` against 70 µs on a bare connection. Flowcron's
services make several small queries per run and per request, so they use this pool:
a deque of idle connections, a deque of waiters, connections opened lazily up to
``max_size``. It has the subset of asyncpg's pool API the services use (``fetch``,
``fetchrow``, ``fetchval``, ``execute``, ``acquire``, ``close``), returns the same
records, and:

* releases a connection with an open transaction only after ``ROLLBACK``;
* closes a connection whose query failed with a connection error or was cancelled (its
  state is then unknown: asyncpg may still be cancelling the query), and opens a new
  one on a later demand, so a restarted Postgres costs the callers of that moment an
  error each, not the pool;
* keeps no session state between borrowers to reset: Flowcron's pooled connections set
  none (listeners use :func:`shared.db.pool.connect`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

Init = Callable[[asyncpg.Connection], Awaitable[None]]


class PoolClosedError(asyncpg.InterfaceError):
    pass


class LightPool:
    def __init__(
        self,
        dsn: str,
        *,
        max_size: int,
        init: Init | None = None,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._dsn = dsn
        self._max = max_size
        self._init = init
        self._settings = server_settings
        self._idle: collections.deque[asyncpg.Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = (
            collections.deque()
        )
        self._size = 0  # open connections plus connections being opened
        self._closed = False

    @property
    def waiting(self) -> int:
        """Borrowers waiting for a connection now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def open(self, min_size: int) -> None:
        """Open ``min_size`` connections now (so a bad DSN fails at start)."""
        conns = [await self._connect() for _ in range(min(min_size, self._max))]
        for conn in conns:
            self._put(conn)

    async def _connect(self) -> asyncpg.Connection:
        self._size += 1
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=self._settings)
            if self._init is not None:
                try:
                    await self._init(conn)
                except BaseException:
                    conn.terminate()
                    raise
        except BaseException:
            self._size -= 1
            self._wake_one()  # a waiter may now open a connection itself
            raise
        return conn

    async def _get(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise PoolClosedError("the pool is closed")
            while self._idle:
                conn = self._idle.pop()  # the most recently used: warm caches
                if not conn.is_closed():
                    return conn
                self._size -= 1
            if self._size < self._max:
                return await self._connect()
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                conn_or_none = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self._put(handed)  # handed over as we were cancelled
                    else:
                        self._wake_one()  # pass the freed slot on
                raise
            if conn_or_none is not None:
                return conn_or_none
            # None: a slot was freed (a connection closed); loop to open one

    def _put(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard(self, conn: asyncpg.Connection) -> None:
        conn.terminate()
        self._size -= 1
        self._wake_one()

    async def _release(self, conn: asyncpg.Connection, failed: BaseException | None) -> None:
        if self._closed or conn.is_closed():
            self._discard(conn)
            return
        if failed is not None and not isinstance(failed, asyncpg.PostgresError):
            # Cancelled, timed out or broken mid-query: the connection's state is unknown.
            self._discard(conn)
            return
        if conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except BaseException:
                self._discard(conn)
                raise
        self._put(conn)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._get()
        try:
            yield conn
        except BaseException as exc:
            await self._release(conn, exc)
            raise
        await self._release(conn, None)

    async def _run(self, method: str, query: str, args: tuple[Any, ...], **kw: Any) -> Any:
        conn = await self._get()
        try:
            result = await getattr(conn, method)(query, *args, **kw)
        except BaseException as exc:
            await self._release(conn, exc)
            raise
        await self._release(conn, None)
        return result

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        status: str = await self._run("execute", query, args, timeout=timeout)
        return status

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", query, args, timeout=timeout)
        return rows

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args, timeout=timeout)
        return row

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        return await self._run("fetchval", query, args, column=column, timeout=timeout)

    async def close(self) -> None:
        """Close the idle connections now; borrowed ones are closed as they come back."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosedError("the pool is closed"))
        idle, self._idle = list(self._idle), collections.deque()
        for conn in idle:
            self._size -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()
