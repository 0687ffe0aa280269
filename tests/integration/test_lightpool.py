"""The services' connection pool against a real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from shared.db.lightpool import LightPool, PoolClosedError
from shared.db.pool import init_connection, open_pool
from shared.settings import Settings
from tests.waiting import wait_for


async def test_queries_json_codecs_and_the_size_bound(settings: Settings) -> None:
    async with open_pool(settings.database_url, min_size=1, max_size=3) as pool:
        assert await pool.fetchval("SELECT $1::jsonb", {"a": [1, "é"]}) == {"a": [1, "é"]}
        row = await pool.fetchrow("SELECT 1 AS one, 'x' AS x")
        assert row is not None and (row["one"], row["x"]) == (1, "x")
        assert [r[0] for r in await pool.fetch("SELECT generate_series(1, 3)")] == [1, 2, 3]
        assert await pool.execute("SELECT 1") == "SELECT 1"
        # 12 concurrent sleeps on 3 connections: never more than 3 backends at once.
        pids = await asyncio.gather(
            *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(12))
        )
        assert len(set(pids)) <= 3


async def test_a_transaction_left_open_is_rolled_back(settings: Settings) -> None:
    async with open_pool(settings.database_url, max_size=1) as pool:
        await pool.execute("CREATE TEMP TABLE IF NOT EXISTS probe (n int)")
        async with pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            await conn.execute("INSERT INTO probe VALUES (1)")
            # released without commit or rollback
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM probe") == 0


async def test_errors_keep_the_connection_cancellation_replaces_it(settings: Settings) -> None:
    async with open_pool(settings.database_url, max_size=1) as pool:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.PostgresError):
            await pool.fetchval("SELECT 1 / 0")
        assert await pool.fetchval("SELECT pg_backend_pid()") == first  # kept

        slow = asyncio.ensure_future(pool.fetchval("SELECT pg_sleep(5) AS probe_sleep"))
        async with open_pool(settings.database_url, max_size=1) as observer:

            async def running() -> bool:
                return bool(
                    await observer.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE query LIKE '%AS probe_sleep' AND state = 'active'"
                    )
                )

            await wait_for(running, timeout=5, interval=0.01, message="the slow query")
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # A new connection answers at once; the cancelled one is gone.
        replacement = await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), 2)
        assert replacement != first
        with pytest.raises(asyncio.TimeoutError):
            await pool.fetchval("SELECT pg_sleep(5)", timeout=0.1)
        assert await pool.fetchval("SELECT 41 + 1") == 42


async def test_waiters_are_served_in_turn_and_closing_fails_them(settings: Settings) -> None:
    pool = LightPool(settings.database_url, max_size=1, init=init_connection)
    await pool.open(1)
    async with pool.acquire():
        waiting = asyncio.ensure_future(pool.fetchval("SELECT 7"))
        cancelled = asyncio.ensure_future(pool.fetchval("SELECT 8"))
        await wait_for(_waiting(pool, 2), timeout=5, interval=0.01, message="two waiters")
        cancelled.cancel()
    assert await waiting == 7
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await pool.fetchval("SELECT 9") == 9  # the cancelled waiter lost no slot

    async with pool.acquire():
        blocked = asyncio.ensure_future(pool.fetchval("SELECT 1"))
        await wait_for(_waiting(pool, 1), timeout=5, interval=0.01, message="a waiter")
        await pool.close()
        with pytest.raises(PoolClosedError):
            await blocked
    with pytest.raises(PoolClosedError):
        await pool.fetchval("SELECT 1")


def _waiting(pool: LightPool, count: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return pool.waiting == count

    return probe


async def test_a_bad_address_fails_at_open(settings: Settings) -> None:
    bad = settings.database_url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(asyncpg.PostgresError):
        async with open_pool(bad):
            pass
