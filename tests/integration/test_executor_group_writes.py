"""Step ends and final statuses of concurrent runs combined into one statement each:
every row keeps its own fence, answer and values, and one bad row fails only itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from services.executor import store
from services.executor.errors import LostRun
from shared.db.pool import Pool, open_pool
from shared.models.messages import RunMessage
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.executor_helpers import (
    create_run,
    create_schedule,
    create_workflow,
    steps_of,
)
from tests.integration.test_executor_delivery import claim

GRAPH: dict[str, Any] = {"nodes": [{"id": "t", "type": "trigger"}], "edges": []}


async def claim_new(
    pool: Pool, org: Org, workflow_id: uuid.UUID, count: int, schedule_id: uuid.UUID | None
) -> list[store.ClaimedRun]:
    runs = []
    for _ in range(count):
        message = await create_run(pool, org.id, workflow_id, schedule_id=schedule_id)
        run = await claim(pool, message, executor_id="x", redelivered=False)
        assert run is not None
        runs.append(run)
    return runs


async def claimed_runs(pool: Pool, org: Org, count: int) -> list[store.ClaimedRun]:
    return await claim_new(pool, org, await create_workflow(pool, org.id, GRAPH), count, None)


async def scheduled_runs(
    pool: Pool, org: Org, count: int
) -> tuple[uuid.UUID, list[store.ClaimedRun]]:
    """Claimed runs of one schedule, which has 2 consecutive failures so far."""
    workflow_id = await create_workflow(pool, org.id, GRAPH)
    schedule_id = await create_schedule(pool, org.id, workflow_id)
    return schedule_id, await claim_new(pool, org, workflow_id, count, schedule_id)


async def test_concurrent_step_ends_share_statements_and_keep_their_own_fence(
    pool: Pool, org: Org
) -> None:
    runs = await claimed_runs(pool, org, 30)
    stale = runs[7]
    # Another replica takes run 7 over: this claim's writes must be held out.
    await pool.execute("UPDATE workflow_runs SET attempt = attempt + 1 WHERE id = $1", stale.id)

    ends = store.GroupWrites(pool, pool, "x")
    stores = [store.RunStore(pool, run, group=ends) for run in runs]
    outputs: list[Any] = [[{"n": i}, {"n": i + 1}] for i in range(30)]  # lists stay lists
    results = await asyncio.gather(
        *(
            s.step_finished(
                "say",
                "action",
                "succeeded",
                attempt=1,
                output=outputs[i],
                input={"message": f"m{i}"},
                logs=[("info", f"line {i}a"), ("warning", f"line {i}b")],
            )
            for i, s in enumerate(stores)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[7], LostRun)
    assert [r for i, r in enumerate(results) if i != 7] == [None] * 29
    assert ends.steps.batches < 30  # combined: the first alone, the rest together

    for i, run in enumerate(runs):
        steps = await steps_of(pool, run.id)
        logs = await pool.fetch(
            "SELECT level, message FROM run_logs WHERE run_id = $1 ORDER BY id", run.id
        )
        if i == 7:
            assert "say" not in steps and logs == []
            continue
        assert steps["say"]["output"] == outputs[i]
        assert steps["say"]["input"] == {"message": f"m{i}"}
        assert [(r["level"], r["message"]) for r in logs] == [
            ("info", f"line {i}a"),
            ("warning", f"line {i}b"),
        ]


async def test_one_bad_value_fails_its_own_write_only(pool: Pool, org: Org) -> None:
    runs = await claimed_runs(pool, org, 5)
    ends = store.GroupWrites(pool, pool, "x")
    stores = [store.RunStore(pool, run, group=ends) for run in runs]
    results = await asyncio.gather(
        *(
            s.step_finished(
                "say",
                "action",
                "failed",
                attempt=1,
                error="bad \x00 byte" if i == 2 else f"error {i}",  # Postgres refuses NUL
            )
            for i, s in enumerate(stores)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[2], Exception) and not isinstance(results[2], LostRun)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
    for i, run in enumerate(runs):
        steps = await steps_of(pool, run.id)
        if i != 2:
            assert steps["say"]["error"] == f"error {i}"


async def test_run_ends_of_one_schedule_in_one_batch_count_in_order(pool: Pool, org: Org) -> None:
    schedule_id, runs = await scheduled_runs(pool, org, 5)
    await pool.execute(
        "INSERT INTO run_steps (run_id, org_id, node_id, node_type, status, attempt)"
        " VALUES ($1, $2, 'left', 'action', 'running', 1)",
        runs[4].id,
        org.id,
    )
    ends = store.GroupWrites(pool, pool, "x")
    statuses = ["failed", "succeeded", "failed", "timed_out", "failed"]
    await asyncio.gather(
        *(
            store.RunStore(pool, run, group=ends).finish(
                status, {"i": i}, None if status == "succeeded" else "boom"
            )
            for i, (run, status) in enumerate(zip(runs, statuses, strict=True))
        )
    )
    assert ends.runs.batches <= 2
    schedule = await pool.fetchrow(
        "SELECT successful_runs, failed_runs, consecutive_failures FROM workflow_schedules"
        " WHERE id = $1",
        schedule_id,
    )
    assert schedule is not None
    # The success in the middle resets the streak; three failures come after it.
    assert dict(schedule) == {
        "successful_runs": 1,
        "failed_runs": 4,
        "consecutive_failures": 3,
    }
    rows = await pool.fetch(
        "SELECT id, status, output FROM workflow_runs WHERE schedule_id = $1", schedule_id
    )
    by_id = {r["id"]: r for r in rows}
    for i, (run, status) in enumerate(zip(runs, statuses, strict=True)):
        assert (by_id[run.id]["status"], by_id[run.id]["output"]) == (status, {"i": i})
    left = await steps_of(pool, runs[4].id)
    assert left["left"]["status"] == "cancelled"


async def test_failures_only_add_to_the_streak(pool: Pool, org: Org) -> None:
    schedule_id, runs = await scheduled_runs(pool, org, 2)

    def failed(run: store.ClaimedRun) -> store.RunEnd:
        return store.RunEnd(
            (run.id, run.org_id, run.attempt), ("running",), "failed", None, "x", ""
        )

    assert await store.write_run_ends(pool, [failed(runs[0])]) == [True]
    # The first run has ended: its fence holds a second end out.
    assert await store.write_run_ends(pool, [failed(runs[1]), failed(runs[0])]) == [True, False]
    streak = await pool.fetchval(
        "SELECT consecutive_failures FROM workflow_schedules WHERE id = $1", schedule_id
    )
    assert streak == 4


@pytest.mark.parametrize("count", [1, 3])
async def test_a_cancelled_caller_is_left_out(pool: Pool, org: Org, count: int) -> None:
    runs = await claimed_runs(pool, org, count + 1)
    ends = store.GroupWrites(pool, pool, "x")
    first = asyncio.create_task(
        store.RunStore(pool, runs[0], group=ends).step_finished(
            "a", "action", "succeeded", attempt=1
        )
    )
    await asyncio.sleep(0)  # its statement is in flight; the next ones wait
    waiting = [
        asyncio.create_task(
            store.RunStore(pool, run, group=ends).step_finished(
                "a", "action", "succeeded", attempt=1
            )
        )
        for run in runs[1:]
    ]
    await asyncio.sleep(0)
    waiting[0].cancel()
    await first
    await asyncio.gather(*waiting, return_exceptions=True)
    assert "a" not in await steps_of(pool, runs[1].id)
    for run in runs[2:]:
        assert (await steps_of(pool, run.id))["a"]["status"] == "succeeded"


async def test_concurrent_claims_share_statements_and_a_duplicate_is_claimed_once(
    pool: Pool, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id, GRAPH)
    messages = [await create_run(pool, org.id, workflow_id) for _ in range(20)]
    group = store.GroupWrites(pool, pool, "x")
    deliveries = [*messages, messages[3]]  # the last: a duplicate delivery of run 3

    async def claim_one(message: RunMessage) -> store.Claim | store.Held | None:
        return await store.claim_run(
            pool,
            message,
            executor_id="x",
            redelivered=False,
            need_graph=message is messages[0],
            trigger_id="t",
            claims=group.claims,
        )

    claims = await asyncio.gather(*(claim_one(m) for m in deliveries))
    assert group.claims.batches < len(deliveries)
    taken = [c for c in claims if isinstance(c, store.Claim)]
    assert sorted(c.run.id for c in taken) == sorted(m.run_id for m in messages)
    assert [claims[3], claims[-1]].count(None) == 1  # run 3: one claim, one dropped
    first = claims[0]
    assert isinstance(first, store.Claim) and first.graph == GRAPH  # asked for, read
    assert all(c.graph is None for c in taken if c.run.id != messages[0].run_id)
    for each in taken:
        assert each.run.attempt == 1
        assert each.succeeded["t"].attempt == 1  # the trigger step, recorded by the claim
    rows = await pool.fetch(
        "SELECT status, executor_id, count(*) FROM workflow_runs WHERE workflow_id = $1"
        " GROUP BY 1, 2",
        workflow_id,
    )
    assert [tuple(r) for r in rows] == [("running", "x", 20)]
    triggers = await pool.fetchval(
        "SELECT count(*) FROM run_steps s JOIN workflow_runs r ON r.id = s.run_id"
        " WHERE r.workflow_id = $1 AND s.node_id = 't'",
        workflow_id,
    )
    assert triggers == 20


async def test_a_workflow_with_max_concurrency_is_claimed_under_its_limit(
    pool: Pool, org: Org
) -> None:
    workflow_id = await create_workflow(pool, org.id, GRAPH)
    await pool.execute("UPDATE workflows SET max_concurrency = 2 WHERE id = $1", workflow_id)
    messages = [await create_run(pool, org.id, workflow_id) for _ in range(5)]
    group = store.GroupWrites(pool, pool, "x")
    claims = await asyncio.gather(
        *(
            store.claim_run(pool, m, executor_id="x", redelivered=False, claims=group.claims)
            for m in messages
        )
    )
    assert len([c for c in claims if isinstance(c, store.Claim)]) == 2
    assert len([c for c in claims if isinstance(c, store.Held)]) == 3


async def test_a_redelivery_waiting_with_its_first_delivery_takes_the_run_over(
    pool: Pool, org: Org
) -> None:
    # Both deliveries of one message wait for the same claim statement: they go in turn,
    # so the redelivery takes over (attempt 2) and fences out the first claim, instead of
    # one of them, chosen by the plan, acknowledging the message the other one runs.
    workflow_id = await create_workflow(pool, org.id, GRAPH)
    message = await create_run(pool, org.id, workflow_id)
    group = store.GroupWrites(pool, pool, "x")
    first, again = await asyncio.gather(
        *(
            store.claim_run(
                pool, message, executor_id="x", redelivered=redelivered, claims=group.claims
            )
            for redelivered in (False, True)
        )
    )
    assert isinstance(first, store.Claim) and isinstance(again, store.Claim)
    assert (first.run.attempt, again.run.attempt) == (1, 2)
    with pytest.raises(LostRun):
        await store.RunStore(pool, first.run, group=group).finish("succeeded", {}, None)
    await store.RunStore(pool, again.run, group=group).finish("succeeded", {}, None)


async def test_a_row_locked_elsewhere_fails_its_run_only_after_the_lock_timeout(
    settings: Settings, pool: Pool, org: Org
) -> None:
    free = await claimed_runs(pool, org, 2)
    schedule_id, [blocked] = await scheduled_runs(pool, org, 1)
    async with (
        open_pool(settings.database_url, max_size=3, lock_timeout_s=0.3) as executor_pool,
        pool.acquire() as other,
        other.transaction(),
    ):
        # Someone holds the schedule's row (an open transaction): its run cannot count.
        await other.execute(
            "SELECT 1 FROM workflow_schedules WHERE id = $1 FOR UPDATE", schedule_id
        )
        group = store.GroupWrites(executor_pool, executor_pool, "x")
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                store.RunStore(executor_pool, run, group=group).finish("succeeded", {}, None)
                for run in (free[0], blocked, free[1])  # the last two share a statement
            ),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - started
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncpg.exceptions.LockNotAvailableError)
    assert elapsed < 5  # two lock timeouts (the shared statement, then the run alone)
    statuses = await pool.fetch(
        "SELECT id, status FROM workflow_runs WHERE id = ANY($1::uuid[])",
        [free[0].id, blocked.id, free[1].id],
    )
    assert {r["id"]: r["status"] for r in statuses} == {
        free[0].id: "succeeded",
        blocked.id: "running",  # handed back: a redelivery ends it
        free[1].id: "succeeded",
    }
