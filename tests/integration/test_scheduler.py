"""The scheduler against real Postgres and JetStream: once per fire, outbox, wake-ups."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

from nats.js import JetStreamContext

from services.scheduler.ticker import Ticker
from services.scheduler.wakeup import listening
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.outbox import MARK_PUBLISHED
from shared.settings import Settings
from tests.conftest import Org
from tests.factories import create_schedule, create_workflow
from tests.waiting import wait_for


async def stream_messages(js: JetStreamContext, topology: Topology) -> list[dict[str, object]]:
    """Every message on the runs stream, read without consuming it."""
    info = await js.stream_info(topology.runs_stream)
    out: list[dict[str, object]] = []
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.runs_stream, seq)
        assert msg.headers is not None
        assert msg.data is not None
        body = json.loads(msg.data)
        assert msg.headers["Nats-Msg-Id"] == body["run_id"]
        out.append(body)
    return out


async def test_a_due_schedule_fires_once(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    due = await pool.fetchval("SELECT date_trunc('minute', now())")
    schedule_id = await create_schedule(
        pool, org.id, workflow_id, cron="* * * * *", next_run_at=due, input={"x": 1}
    )
    ticker = Ticker(settings, pool, js)

    first = await ticker.tick()
    second = await ticker.tick()

    assert (first.claimed, first.created, first.published) == (1, 1, 1)
    assert second.claimed == 0
    runs = await pool.fetch("SELECT * FROM workflow_runs WHERE schedule_id = $1", schedule_id)
    assert len(runs) == 1
    run = runs[0]
    assert run["scheduled_for"] == due
    assert run["trigger"] == "schedule"
    assert run["input"] == {"x": 1}
    assert run["published_at"] is not None
    schedule = await pool.fetchrow("SELECT * FROM workflow_schedules WHERE id = $1", schedule_id)
    assert schedule is not None
    assert schedule["next_run_at"] == due + timedelta(minutes=1)
    assert schedule["last_run_at"] == due
    assert schedule["total_runs"] == 1
    messages = await stream_messages(js, topology)
    assert [m["run_id"] for m in messages] == [str(run["id"])]
    assert messages[0]["schedule_id"] == str(schedule_id)


async def test_racing_schedulers_write_one_run_per_fire(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    due = await pool.fetchval("SELECT date_trunc('minute', now())")
    for _ in range(200):
        await create_schedule(pool, org.id, workflow_id, cron="* * * * *", next_run_at=due)
    small = settings.model_copy(update={"scheduler_batch_size": 7})
    tickers = [Ticker(small, pool, js) for _ in range(4)]

    async def drain(ticker: Ticker) -> int:
        created = 0
        while (result := await ticker.tick()).claimed:
            created += result.created
        return created

    created = await asyncio.gather(*(drain(t) for t in tickers))

    assert sum(created) == 200
    assert await pool.fetchval("SELECT count(DISTINCT schedule_id) FROM workflow_runs") == 200
    assert await pool.fetchval("SELECT count(*) FROM workflow_runs") == 200
    assert len(await stream_messages(js, topology)) == 200


async def test_the_outbox_publishes_runs_a_crash_left_unpublished(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    run_id = await pool.fetchval(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger,
                                      created_at)
           VALUES (gen_random_uuid(), $1, $2, 1, 'manual', now() - interval '1 minute')
           RETURNING id""",
        org.id,
        workflow_id,
    )
    ticker = Ticker(settings, pool, js)

    assert await ticker.sweep_outbox() == 1
    assert await ticker.sweep_outbox() == 0  # now recorded as published

    assert [m["run_id"] for m in await stream_messages(js, topology)] == [str(run_id)]
    assert await pool.fetchval("SELECT published_at FROM workflow_runs WHERE id = $1", run_id)


async def test_a_published_run_sent_twice_is_one_message(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    run_id = await pool.fetchval(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger,
                                      created_at)
           VALUES (gen_random_uuid(), $1, $2, 1, 'manual', now() - interval '1 minute')
           RETURNING id""",
        org.id,
        workflow_id,
    )
    ticker = Ticker(settings, pool, js)
    await ticker.sweep_outbox()
    # A crash after publishing but before recording it: the sweep sends it again.
    await pool.execute("UPDATE workflow_runs SET published_at = NULL WHERE id = $1", run_id)
    await ticker.sweep_outbox()

    assert [m["run_id"] for m in await stream_messages(js, topology)] == [str(run_id)]


async def test_a_new_schedule_wakes_a_sleeping_scheduler(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    # The sleep cap is a minute: only the NOTIFY can make this fire in time.
    patient = settings.model_copy(
        update={"scheduler_max_sleep_s": 60, "scheduler_outbox_grace_s": 60}
    )
    workflow_id = await create_workflow(pool, org.id)
    stop = asyncio.Event()
    async with listening(settings.database_url) as wakeup:
        loop = asyncio.create_task(Ticker(patient, pool, js, wakeup).run(stop))
        try:
            await wait_for(
                lambda: asyncio.sleep(0.2, result=not wakeup.event.is_set()),
                message="the scheduler to go to sleep",
            )
            due = await pool.fetchval("SELECT now() + interval '1 second'")
            schedule_id = await create_schedule(
                pool, org.id, workflow_id, cron="* * * * * *", next_run_at=due
            )

            async def fired() -> int:
                return int(
                    await pool.fetchval(
                        "SELECT count(*) FROM workflow_runs WHERE schedule_id = $1", schedule_id
                    )
                )

            assert await wait_for(fired, timeout=10, message="the new schedule to fire") >= 1
            first = await pool.fetchval(
                "SELECT min(scheduled_for) FROM workflow_runs WHERE schedule_id = $1", schedule_id
            )
            assert first == due
        finally:
            stop.set()
            await asyncio.wait_for(loop, 10)


async def test_changing_pausing_and_deleting_take_effect_at_once(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    patient = settings.model_copy(
        update={"scheduler_max_sleep_s": 60, "scheduler_outbox_grace_s": 60}
    )
    workflow_id = await create_workflow(pool, org.id)
    far = await pool.fetchval("SELECT now() + interval '1 day'")
    schedule_id = await create_schedule(
        pool, org.id, workflow_id, cron="0 0 * * *", next_run_at=far
    )

    async def runs() -> int:
        query = "SELECT count(*) FROM workflow_runs WHERE schedule_id = $1"
        return int(await pool.fetchval(query, schedule_id))

    stop = asyncio.Event()
    async with listening(settings.database_url) as wakeup:
        loop = asyncio.create_task(Ticker(patient, pool, js, wakeup).run(stop))
        try:
            # Changed: a schedule that slept for a day fires every second from now on.
            await pool.execute(
                "UPDATE workflow_schedules SET cron = '* * * * * *',"
                " next_run_at = date_trunc('second', now()) + interval '1 second' WHERE id = $1",
                schedule_id,
            )
            await wait_for(runs, timeout=10, message="the changed schedule to fire")
            # Paused: the fires that follow are recorded as paused, not run.
            await pool.execute(
                "UPDATE workflow_schedules SET paused_until = now() + interval '1 hour',"
                " pause_note = 'hold' WHERE id = $1",
                schedule_id,
            )

            async def paused() -> int:
                query = "SELECT count(*) FROM schedule_decisions WHERE schedule_id = $1"
                return int(await pool.fetchval(query, schedule_id))

            await wait_for(paused, timeout=10, message="a fire recorded as paused")
            count = await runs()
            # Deleted: its runs go with it (set null on schedule_id) and nothing fires.
            await pool.execute("DELETE FROM workflow_schedules WHERE id = $1", schedule_id)
            assert count >= 1
            assert await runs() == 0
        finally:
            stop.set()
            await asyncio.wait_for(loop, 10)


async def create_due_schedules(
    pool: Pool, org_id: uuid.UUID, workflow_id: uuid.UUID, count: int
) -> None:
    """``count`` schedules of the workflow, all due at the current second."""
    await pool.execute(
        """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at)
           SELECT gen_random_uuid(), $1, $2, '0 0 1 1 *', date_trunc('second', now())
           FROM generate_series(1, $3)""",
        org_id,
        workflow_id,
        count,
    )


async def test_drain_pipelines_batches_and_fires_each_schedule_once(
    settings: Settings, pool: Pool, js: JetStreamContext, topology: Topology, org: Org
) -> None:
    """drain(): batch N+1 written while batch N publishes; every fire once, all acked."""
    workflow_id = await create_workflow(pool, org.id)
    await create_due_schedules(pool, org.id, workflow_id, 50)
    ticker = Ticker(settings.model_copy(update={"scheduler_batch_size": 8}), pool, js)

    result = await ticker.drain()

    assert (result.claimed, result.created, result.published) == (50, 50, 50)
    assert (await ticker.drain()).claimed == 0
    runs = await pool.fetch(
        "SELECT id, published_at FROM workflow_runs WHERE workflow_id = $1", workflow_id
    )
    assert len(runs) == 50 and all(r["published_at"] is not None for r in runs)
    messages = await stream_messages(js, topology)
    assert sorted(str(m["run_id"]) for m in messages) == sorted(str(r["id"]) for r in runs)


async def test_the_published_mark_touches_no_index(
    settings: Settings, pool: Pool, js: JetStreamContext, org: Org
) -> None:
    """Marking runs published is a heap-only update, the cheap write the burst relies on:
    it fails if an index comes to mention published_at or the pages lose their room."""
    workflow_id = await create_workflow(pool, org.id)
    await create_due_schedules(pool, org.id, workflow_id, 40)
    ticker = Ticker(settings, pool, js)
    # The ticker's own path, minus the publish: claimed and written in one transaction.
    written = await ticker._claim_and_write()
    assert written is not None and len(written.messages) == 40

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(MARK_PUBLISHED, [m.run_id for m in written.messages])
        hot = await conn.fetchval(
            "SELECT pg_stat_get_xact_tuples_hot_updated('workflow_runs'::regclass)"
        )
        updated = await conn.fetchval(
            "SELECT pg_stat_get_xact_tuples_updated('workflow_runs'::regclass)"
        )
    assert (updated, hot) == (40, 40)
