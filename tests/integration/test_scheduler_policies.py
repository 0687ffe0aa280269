"""Scheduler policies against real Postgres and JetStream, with the decision history."""

from __future__ import annotations

import uuid
from datetime import datetime
from itertools import pairwise

from nats.js import JetStreamContext

from services.scheduler.ticker import Ticker
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.factories import create_schedule, create_workflow
from tests.integration.test_scheduler import stream_messages
from tests.waiting import wait_for


async def due_minute(pool: Pool) -> datetime:
    value: datetime = await pool.fetchval("SELECT date_trunc('minute', now())")
    return value


async def history(pool: Pool, schedule_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT decision, reason FROM schedule_decisions WHERE schedule_id = $1 ORDER BY id",
        schedule_id,
    )
    return [(r["decision"], r["reason"]) for r in rows]


async def running_run(
    pool: Pool, org: Org, workflow_id: uuid.UUID, schedule_id: uuid.UUID
) -> uuid.UUID:
    run_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, schedule_id,
                                      trigger, scheduled_for, status, published_at)
           VALUES (gen_random_uuid(), $1, $2, 1, $3, 'schedule', now() - interval '1 hour',
                   'running', now())
           RETURNING id""",
        org.id,
        workflow_id,
        schedule_id,
    )
    return run_id


async def test_a_plain_creation_is_recorded_by_its_run_alone(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool, org.id, workflow_id, cron="* * * * *", next_run_at=await due_minute(pool)
    )
    await Ticker(settings, pool, js).tick()
    assert await history(pool, schedule_id) == []  # the history endpoint reads the run
    run = await pool.fetchrow("SELECT * FROM workflow_runs WHERE schedule_id = $1", schedule_id)
    assert run is not None
    assert run["trigger"] == "schedule"


async def test_overlap_skip_records_the_skipped_fire(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await due_minute(pool),
        overlap_policy="skip",
    )
    await running_run(pool, org, workflow_id, schedule_id)
    result = await Ticker(settings, pool, js).tick()
    assert result.created == 0
    assert await history(pool, schedule_id) == [
        ("skipped_overlap", "a previous run is still in flight")
    ]


async def test_buffer_one_holds_a_run_until_the_running_one_ends(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await due_minute(pool),
        overlap_policy="buffer_one",
    )
    busy = await running_run(pool, org, workflow_id, schedule_id)
    ticker = Ticker(settings, pool, js)
    await ticker.tick()
    assert await ticker.release() == 0
    assert await stream_messages(js, topology) == []  # held, not published
    assert [k for k, _ in await history(pool, schedule_id)] == ["buffered"]

    await pool.execute("UPDATE workflow_runs SET status = 'succeeded' WHERE id = $1", busy)
    assert await ticker.release() == 1
    (message,) = await stream_messages(js, topology)
    held = await pool.fetchrow(
        "SELECT id, held, published_at FROM workflow_runs WHERE schedule_id = $1 AND id <> $2",
        schedule_id,
        busy,
    )
    assert held is not None
    assert message["run_id"] == str(held["id"])
    assert held["held"] is False
    assert held["published_at"] is not None


async def test_cancel_other_cancels_the_running_run(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await due_minute(pool),
        overlap_policy="cancel_other",
    )
    busy = await running_run(pool, org, workflow_id, schedule_id)
    result = await Ticker(settings, pool, js).tick()
    assert result.created == 1
    status = await pool.fetchval("SELECT status FROM workflow_runs WHERE id = $1", busy)
    assert status == "cancelled"
    assert [k for k, _ in await history(pool, schedule_id)] == ["cancelled_other"]


async def test_a_paused_schedule_records_fires_and_resumes_by_itself(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * * *",
        next_run_at=await pool.fetchval("SELECT date_trunc('second', now())"),
        paused_until=await pool.fetchval("SELECT now() + interval '1.5 seconds'"),
        pause_note="deploy window",
    )
    ticker = Ticker(settings, pool, js)
    await ticker.tick()
    kind, reason = (await history(pool, schedule_id))[0]
    assert kind == "paused"
    assert reason.startswith("deploy window until")

    async def created() -> int:
        await ticker.tick()
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE schedule_id = $1", schedule_id
            )
        )

    assert await wait_for(created, timeout=10, message="the pause to end") >= 1


async def test_consecutive_failures_auto_pause_with_the_reason(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await due_minute(pool),
        auto_pause_after=3,
        consecutive_failures=3,
    )
    result = await Ticker(settings, pool, js).tick()
    assert result.created == 0
    schedule = await pool.fetchrow(
        "SELECT paused_until, pause_note FROM workflow_schedules WHERE id = $1", schedule_id
    )
    assert schedule is not None
    assert schedule["paused_until"] > await pool.fetchval("SELECT now() + interval '100 years'")
    assert schedule["pause_note"] == "auto-paused after 3 consecutive failed runs"
    assert await history(pool, schedule_id) == [
        ("paused", "auto-paused after 3 consecutive failed runs")
    ]


async def test_jitter_and_paced_catchup_release_runs_later(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    # Down for five minutes with catch-up 'all': five late fires, paced 0.3 s apart.
    schedule_id = await create_schedule(
        pool,
        org.id,
        workflow_id,
        cron="* * * * *",
        next_run_at=await pool.fetchval(
            "SELECT date_trunc('minute', now()) - interval '5 minutes'"
        ),
        catchup_policy="all",
        catchup_window_s=3600,
        catchup_interval_s=0.3,
    )
    ticker = Ticker(settings, pool, js)
    result = await ticker.tick()
    # Five late fires and the on-time one; the first late one and the on-time one go at
    # once, the other late ones follow 0.3 s apart.
    assert (result.created, result.published) == (6, 2)

    async def all_published() -> bool:
        await ticker.release()
        return len(await stream_messages(js, topology)) == result.created

    assert await wait_for(all_published, timeout=10, message="the paced runs")
    releases = await pool.fetch(
        "SELECT release_at FROM workflow_runs WHERE schedule_id = $1 AND release_at IS NOT NULL"
        " ORDER BY release_at",
        schedule_id,
    )
    gaps = [(b["release_at"] - a["release_at"]).total_seconds() for a, b in pairwise(releases)]
    assert all(abs(g - 0.3) < 0.01 for g in gaps)
