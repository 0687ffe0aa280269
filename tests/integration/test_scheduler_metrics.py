"""The scheduler's metrics and its one-clock check."""

from __future__ import annotations

import aiohttp
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from flowcron.embedded import free_port
from services.scheduler.ticker import Ticker
from shared.db.pool import Pool
from shared.metrics_server import serve_metrics
from shared.settings import Settings
from tests.conftest import Org
from tests.factories import create_schedule, create_workflow


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_fires_and_lag_are_counted_and_served(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await pool.fetchval("SELECT date_trunc('minute', now())"),
    )
    created_before = sample("flowcron_scheduler_fires_total", {"decision": "created"})
    lag_before = sample("flowcron_scheduler_fire_lag_seconds_count")
    await Ticker(settings, pool, js).tick()
    assert sample("flowcron_scheduler_fires_total", {"decision": "created"}) == created_before + 1
    assert sample("flowcron_scheduler_fire_lag_seconds_count") == lag_before + 1

    port = free_port()
    async with (
        serve_metrics("127.0.0.1", port),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    assert 'flowcron_scheduler_fires_total{decision="created"}' in text
    assert "flowcron_scheduler_fire_lag_seconds_bucket" in text


async def test_a_skewed_clock_is_reported(
    settings: Settings, pool: Pool, js: JetStreamContext
) -> None:
    strict = settings.model_copy(update={"scheduler_max_clock_skew_s": 1e-9})
    with capture_logs() as logs:
        skew = await Ticker(strict, pool, js).check_health()
    assert abs(skew) < 1  # the same machine: both clocks agree to well under a second
    assert any(e["event"] == "this host's clock is off from the database's" for e in logs)
    assert sample("flowcron_scheduler_clock_skew_seconds") == skew
    with capture_logs() as quiet:
        await Ticker(settings, pool, js).check_health()
    assert not any("clock" in e["event"] for e in quiet)
