"""Several scheduler processes, one killed with SIGKILL mid-burst: every fire of every
schedule has exactly one run, none missing, none doubled, every run published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from itertools import pairwise
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.conftest import Org
from tests.factories import create_workflow
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
SCHEDULES = 300


def start_scheduler(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWCRON_DATABASE_URL": settings.database_url,
        "FLOWCRON_NATS_URL": settings.nats_url,
        "FLOWCRON_NAMESPACE": settings.namespace,
        "FLOWCRON_SCHEDULER_BATCH_SIZE": "50",
        "FLOWCRON_SCHEDULER_OUTBOX_GRACE_S": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.scheduler"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigkill_during_a_burst_loses_and_doubles_nothing(
    settings: Settings,
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    org: Org,
    tmp_path: Path,
) -> None:
    workflow_id = await create_workflow(pool, org.id)
    await pool.execute(
        """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at)
           SELECT gen_random_uuid(), $1, $2, '* * * * * *',
                  date_trunc('second', now()) + interval '1 second'
           FROM generate_series(1, $3)""",
        org.id,
        workflow_id,
        SCHEDULES,
    )
    procs = [start_scheduler(settings, tmp_path / f"scheduler-{i}.log") for i in range(3)]
    try:
        await wait_for(runs_at_least(pool, SCHEDULES * 2), timeout=30, message="a burst")
        procs[0].send_signal(signal.SIGKILL)  # in the middle of claiming and publishing
        procs[0].wait(10)
        await wait_for(runs_at_least(pool, SCHEDULES * 5), timeout=30, message="more fires")
        # Schedules must stop changing before the count is taken: disable them all.
        await pool.execute("UPDATE workflow_schedules SET enabled = false")

        async def all_published() -> bool:
            query = "SELECT count(*) FROM workflow_runs WHERE published_at IS NULL"
            return int(await pool.fetchval(query)) == 0

        # Whatever the killed process committed but did not publish, a survivor's
        # outbox sweep publishes.
        await wait_for(all_published, timeout=30, message="the outbox sweep")
    finally:
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc in procs[1:]:
            assert proc.wait(30) == 0, (tmp_path / "scheduler-1.log").read_text()[-2000:]

    fires = await pool.fetch(
        "SELECT schedule_id, array_agg(scheduled_for ORDER BY scheduled_for) AS times"
        " FROM workflow_runs GROUP BY schedule_id"
    )
    assert len(fires) == SCHEDULES
    for row in fires:
        times = row["times"]
        assert len(times) == len(set(times))
        assert {(b - a).total_seconds() for a, b in pairwise(times)} <= {1.0}, times
    # Whatever the killed process had committed but not published, a survivor's outbox
    # sweep published; the stream holds each run exactly once.
    unpublished = await pool.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE published_at IS NULL"
    )
    total = await pool.fetchval("SELECT count(*) FROM workflow_runs")
    assert unpublished == 0
    info = await js.stream_info(topology.runs_stream)
    assert info.state.messages == total


def runs_at_least(pool: Pool, n: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return int(await pool.fetchval("SELECT count(*) FROM workflow_runs")) >= n

    return probe
