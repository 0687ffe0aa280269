"""GET /api/stats: by status, success rate, duration percentiles, runs per hour."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from nats.js import JetStreamContext

from services.api.routes.stats import CACHE
from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.factories import create_schedule, create_workflow
from tests.integration.test_api_support import Client, api_client, assert_problem
from tests.waiting import wait_for

_SEED = """
INSERT INTO workflow_runs
    (id, org_id, workflow_id, workflow_version, schedule_id, trigger, status,
     created_at, started_at, finished_at)
SELECT gen_random_uuid(), $1, $2, 1, $3, 'manual', $4,
       now() - make_interval(hours => $5), now() - make_interval(hours => $5),
       now() - make_interval(hours => $5) + make_interval(secs => g::double precision / 1000)
FROM generate_series(1, $6) AS g
"""


@pytest_asyncio.fixture(loop_scope="session")
async def fresh(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings.model_copy(update={"api_stats_cache_s": 0})) as client:
        yield client


async def test_stats(fresh: Client, org: Org, other_org: Org, pool: Pool) -> None:
    wid = await create_workflow(pool, org.id)
    sid = await create_schedule(pool, org.id, wid, cron="* * * * *", next_run_at=None)
    other_wid = await create_workflow(pool, org.id)
    # 100 succeeded (durations 1…100 ms) two hours ago, 20 failed now (for the schedule),
    # 5 queued, and runs outside the window or of another organization.
    await pool.execute(_SEED, org.id, wid, None, "succeeded", 2, 100)
    await pool.execute(_SEED, org.id, wid, sid, "failed", 0, 20)
    await pool.execute(_SEED, org.id, other_wid, None, "queued", 0, 5)
    await pool.execute(_SEED, org.id, wid, None, "succeeded", 30, 50)
    foreign = await create_workflow(pool, other_org.id)
    await pool.execute(_SEED, other_org.id, foreign, None, "failed", 0, 7)

    resp = await fresh.get("/api/stats", headers=org.headers)
    assert resp.status == 200, await resp.text()
    stats = await resp.json()
    assert stats["total"] == 125
    assert stats["by_status"] == {
        "queued": 5,
        "running": 0,
        "succeeded": 100,
        "failed": 20,
        "cancelled": 0,
        "timed_out": 0,
    }
    assert stats["success_rate"] == round(100 / 120, 4)
    assert 9 < stats["duration_ms"]["p50"] < 60 and stats["duration_ms"]["p95"] > 80
    hours = stats["per_hour"]
    assert len(hours) == 24 and sum(h["runs"] for h in hours) == 125
    assert hours[-1]["runs"] == 25 and hours[-3]["runs"] == 100

    wide = await (await fresh.get("/api/stats?hours=48", headers=org.headers)).json()
    assert wide["total"] == 175 and sum(h["runs"] for h in wide["per_hour"]) == 125

    by_workflow = await (
        await fresh.get(f"/api/stats?workflow_id={wid}", headers=org.headers)
    ).json()
    assert by_workflow["total"] == 120
    by_schedule = await (
        await fresh.get(f"/api/stats?schedule_id={sid}", headers=org.headers)
    ).json()
    assert by_schedule["by_status"]["failed"] == 20 and by_schedule["success_rate"] == 0

    empty = await (
        await fresh.get(f"/api/stats?workflow_id={uuid.uuid4()}", headers=org.headers)
    ).json()
    assert empty["total"] == 0 and empty["success_rate"] is None
    assert empty["duration_ms"] == {"p50": None, "p95": None}
    other = await (await fresh.get("/api/stats", headers=other_org.headers)).json()
    assert other["total"] == 7

    for bad in ("hours=0", "hours=10000", "workflow_id=nope", "colour=red"):
        await assert_problem(await fresh.get(f"/api/stats?{bad}", headers=org.headers), 422)


async def test_stats_are_cached_briefly(api: Client, org: Org, pool: Pool) -> None:
    first = await (await api.get("/api/stats", headers=org.headers)).json()
    wid = await create_workflow(pool, org.id)
    await pool.execute(_SEED, org.id, wid, None, "succeeded", 0, 3)
    second = await (await api.get("/api/stats", headers=org.headers)).json()
    assert second == first  # within api_stats_cache_s (5 s by default)


async def test_expired_stats_are_refreshed_behind_the_old_answer(
    settings: Settings, js: JetStreamContext, org: Org, pool: Pool
) -> None:
    """Past the ttl one request starts a new reading and is answered from the old one;
    the new reading answers as soon as it is in."""
    ttl = 60.0
    async with api_client(settings.model_copy(update={"api_stats_cache_s": ttl})) as api:
        first = await (await api.get("/api/stats", headers=org.headers)).json()
        wid = await create_workflow(pool, org.id)
        await pool.execute(_SEED, org.id, wid, None, "succeeded", 0, 3)
        app = api.app
        assert app is not None
        for entry in app[CACHE].values():  # the ttl has passed
            entry.expires = time.monotonic() - 1
        stale = await (await api.get("/api/stats", headers=org.headers)).json()
        assert stale == first

        async def refreshed() -> bool:
            body = await (await api.get("/api/stats", headers=org.headers)).json()
            return bool(body["total"] == first["total"] + 3)

        await wait_for(refreshed, timeout=2, interval=0.02, message="the new reading")
