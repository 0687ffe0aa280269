"""Executor replicas as processes: a new one takes its share of queued work at once;
one stopped with SIGTERM drains and loses no run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.deploy import scaling
from tests.deploy.processes import Processes, command_argv, processes, settings_environment
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
# One run in flight per replica: the throughput of a replica is bounded by its
# concurrency and the server's 50 ms, not by the (shared, 2-core) CPU.
CONCURRENCY = 1


@pytest_asyncio.fixture(loop_scope="session")
async def url() -> AsyncIterator[str]:
    async with scaling.slow_server() as found:
        yield found


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as started:
        yield started


def start_executor(group: Processes, settings: Settings, name: str) -> int:
    env = settings_environment(settings, executor_concurrency=CONCURRENCY)
    return group.start(name, command_argv("flowcron", "executor"), env).pid


async def test_a_replica_added_while_work_is_queued_takes_its_share(
    settings: Settings,
    js: JetStreamContext,
    topology: Topology,
    pool: Pool,
    org: Org,
    url: str,
    group: Processes,
) -> None:
    workflow_id = await scaling.create_workflow(pool, org.id, scaling.http_graph(url))
    first = start_executor(group, settings, "executor-1")
    await wait_for(lambda: scaling.pulling(js, topology, 1), timeout=30, message="executor-1")
    total = 100
    await scaling.queue_runs(pool, js, topology, org.id, workflow_id, total)

    async def started_working() -> bool:
        return (await scaling.shares_by_pid(pool, workflow_id)).get(first, 0) >= 5

    await wait_for(started_working, timeout=30, message="executor-1 to be working")
    second = start_executor(group, settings, "executor-2")

    async def second_working() -> bool:
        return (await scaling.shares_by_pid(pool, workflow_id)).get(second, 0) >= 1

    await wait_for(second_working, timeout=30, message="executor-2 to take work")
    left = total - (await scaling.status_counts(pool, workflow_id)).get("succeeded", 0)
    assert left > 0  # it joined while work was queued

    async def all_succeeded() -> dict[str, int]:
        counts = await scaling.status_counts(pool, workflow_id)
        return counts if counts.get("succeeded") == total else {}

    await wait_for(all_succeeded, timeout=60, message=f"{total} succeeded runs")
    shares = await scaling.shares_by_pid(pool, workflow_id)
    assert sum(shares.values()) == total
    # From the moment it pulled, the new replica took a fair part of what was left
    # (two equal replicas: about half; a third at least, whatever the machine's load).
    assert shares[second] >= left / 3, (shares, left)
    assert all(code == 0 for code in (await asyncio.to_thread(group.stop_all)).values())


async def test_a_replica_stopped_with_sigterm_loses_no_run(
    settings: Settings,
    js: JetStreamContext,
    topology: Topology,
    pool: Pool,
    org: Org,
    url: str,
    group: Processes,
) -> None:
    workflow_id = await scaling.create_workflow(pool, org.id, scaling.http_graph(url))
    kept = start_executor(group, settings, "executor-kept")
    stopped = start_executor(group, settings, "executor-stopped")
    await wait_for(lambda: scaling.pulling(js, topology, 2), timeout=30, message="2 executors")
    total = 60
    run_ids = await scaling.queue_runs(pool, js, topology, org.id, workflow_id, total)

    async def both_working() -> bool:
        shares = await scaling.shares_by_pid(pool, workflow_id)
        return shares.get(kept, 0) >= 3 and shares.get(stopped, 0) >= 3

    await wait_for(both_working, timeout=30, message="both executors to be working")
    (victim,) = [p for p in group.started if p.pid == stopped]
    # In a thread: the slow server lives on this event loop and must keep answering.
    assert await asyncio.to_thread(group.stop, victim) == 0, victim.tail()

    async def all_terminal() -> dict[str, int]:
        counts = await scaling.status_counts(pool, workflow_id)
        return counts if counts.get("succeeded", 0) == total else {}

    await wait_for(all_terminal, timeout=60, message=f"{total} succeeded runs")
    rows = await pool.fetch(
        "SELECT id, status FROM workflow_runs WHERE workflow_id = $1", workflow_id
    )
    assert {row["id"] for row in rows} == set(run_ids)
    assert {row["status"] for row in rows} == {"succeeded"}
    shares = await scaling.shares_by_pid(pool, workflow_id)
    assert shares[kept] > shares[stopped] >= 3, shares
    assert all(code == 0 for code in (await asyncio.to_thread(group.stop_all)).values())
