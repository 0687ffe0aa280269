"""The asyncpg pool, opened and closed in one place.

``jsonb`` and ``json`` columns are decoded to Python values and encoded from them,
so queries pass and receive dicts and lists directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import asyncpg.pool

from shared.db import jsoncodec
from shared.db.lightpool import LightPool

Pool = LightPool  # records are asyncpg.Record; see shared/db/lightpool.py for why


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register the JSON codecs on a new connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=jsoncodec.dumps,
            decoder=jsoncodec.loads,
            schema="pg_catalog",
            format="text",
        )


@asynccontextmanager
async def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    async_commit: bool = False,
    lock_timeout_s: float | None = None,
) -> AsyncIterator[Pool]:
    """Open a pool for the lifetime of the ``async with`` block.

    ``async_commit``: its transactions commit without waiting for the WAL flush
    (``synchronous_commit=off``), for writes whose loss in a Postgres crash is
    harmless, such as the outbox's "published" marks (a lost mark means one more,
    deduplicated, publish). ``lock_timeout_s``: a statement that waits longer for a row
    lock fails (``LockNotAvailableError``) instead of waiting without end.
    """
    server_settings: dict[str, str] = {}
    if async_commit:
        server_settings["synchronous_commit"] = "off"
    if lock_timeout_s is not None:
        server_settings["lock_timeout"] = f"{max(1, round(lock_timeout_s * 1000))}ms"
    pool = LightPool(
        dsn,
        max_size=max_size,
        init=init_connection,
        server_settings=server_settings or None,
    )
    try:
        await pool.open(min_size)
    except BaseException:
        await pool.close()
        raise
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection with the JSON codecs, for command-line tools and listeners."""
    conn = await asyncpg.connect(dsn)
    try:
        await init_connection(conn)
        yield conn
    finally:
        await conn.close()


# What query helpers accept: a plain connection or one borrowed from the pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
