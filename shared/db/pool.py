"""The asyncpg pool, opened and closed in one place.

``jsonb`` and ``json`` columns are decoded to Python values and encoded from them,
so queries pass and receive dicts and lists directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import asyncpg.pool

Pool = asyncpg.Pool  # the pool's record type is asyncpg.Record


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register the JSON codecs on a new connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@asynccontextmanager
async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> AsyncIterator[Pool]:
    """Open a pool for the lifetime of the ``async with`` block."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection
    )
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
