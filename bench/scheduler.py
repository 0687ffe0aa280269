"""Scheduler benchmarks (issue 3): burst, precision and size.

    .venv/bin/python bench/scheduler.py burst [--schedules 100000] [--batch 2000] [--processes N]
    .venv/bin/python bench/scheduler.py precision [--schedules 2000] [--minutes 3]
    .venv/bin/python bench/scheduler.py size [--schedules 1000000]

* burst: N schedules all due at the same second; the time until every run row is
  written and every run message acknowledged by JetStream; fires per second. With
  ``--processes``, also the CPU each fire cost the schedulers, Postgres and NATS.
* precision: N schedules spread over each minute; fire lag (fire time → message
  acknowledged, on the database clock) p50, p99, max.
* size: N stored schedules; the claim query's time and a scheduler process's RSS
  while a thousand of them fire every five seconds.

Uses FLOWCRON_BENCH_DATABASE_URL / FLOWCRON_BENCH_NATS_URL (default: the local servers),
in a fresh database and namespace that are dropped afterwards. Prints the figures and
writes them to bench/results/scheduler-<mode>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.scheduler.queries import CLAIM_DUE
from services.scheduler.ticker import Ticker
from services.scheduler.wakeup import listening
from shared.db.migrator import migrate
from shared.db.pool import Pool, open_pool
from shared.logging import configure_logging
from shared.messaging.connection import open_nats
from shared.messaging.pipeline import ack_pipeline
from shared.messaging.topology import Topology, delete_topology, ensure_topology
from shared.settings import Settings

SERVER = os.environ.get(
    "FLOWCRON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS = os.environ.get("FLOWCRON_BENCH_NATS_URL", "nats://127.0.0.1:4222")
ROOT = Path(__file__).resolve().parents[1]
GRAPH = {"nodes": [{"id": "t", "type": "trigger"}], "edges": []}


async def seed(pool: Pool, count: int, *, due_in_s: int = 0) -> None:
    """``count`` schedules of one workflow, all due at the same second (``due_in_s``
    from now, on the database clock)."""
    org, wf = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO organizations (id, name) VALUES ($1, 'bench')", org)
    await pool.execute(
        "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, 'bench', $3)",
        wf,
        org,
        GRAPH,
    )
    await pool.execute(
        """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at)
           SELECT gen_random_uuid(), $1, $2, '0 0 1 1 *',
                  date_trunc('second', now()) + make_interval(secs => $4)
           FROM generate_series(1, $3)""",
        org,
        wf,
        count,
        due_in_s,
    )


@asynccontextmanager
async def environment(batch: int) -> AsyncIterator[tuple[Settings, Pool, Any, Any]]:
    """A fresh database and namespace on the benchmark servers, dropped afterwards."""
    database = f"flowcron_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + database
    settings = Settings(
        database_url=url,
        nats_url=NATS,
        namespace=f"bench{uuid.uuid4().hex[:6]}",
        scheduler_batch_size=batch,
    )
    try:
        async with (
            open_pool(url, max_size=4) as pool,
            open_nats(settings.nats_servers, name="bench") as nc,
        ):
            async with pool.acquire() as conn:
                await migrate(conn)
            js = nc.jetstream()
            topology = Topology(settings.namespace)
            await ensure_topology(js, topology)
            try:
                yield settings, pool, nc, js
            finally:
                await delete_topology(js, topology)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def burst(count: int, batch: int) -> dict[str, Any]:
    """``count`` schedules due at the same second: time to write and publish them all."""
    async with environment(batch) as (settings, pool, nc, js):
        await seed(pool, count)
        async with ack_pipeline(nc) as pipeline:
            ticker = Ticker(settings, pool, js, pipeline=pipeline)
            started = time.perf_counter()
            created = published = 0
            while (result := await ticker.drain()).claimed:  # pipelined, as the service runs
                created += result.created
                published += result.published
            elapsed = time.perf_counter() - started
        stream = await js.stream_info(Topology(settings.namespace).runs_stream)
    assert created == count == published == stream.state.messages, (created, published)
    return {
        "schedules": count,
        "batch_size": batch,
        "seconds": round(elapsed, 3),
        "fires_per_second": round(count / elapsed, 1),
    }


async def burst_processes(count: int, batch: int, processes: int) -> dict[str, Any]:
    """The burst fired by ``processes`` scheduler processes (``python -m
    services.scheduler``, as Compose runs two), sharing the work through SKIP LOCKED:
    from the first run row written to the last message acknowledged (its
    ``published_at``), on the database clock."""
    async with environment(batch) as (settings, pool, _nc, js):
        # Due a few seconds ahead, so the processes have started and sleep until then:
        # the CPU counted from just before the due second is the burst's alone.
        await seed(pool, count, due_in_s=6)
        procs = [await start_scheduler(settings) for _ in range(processes)]
        try:
            wait = await pool.fetchval(
                "SELECT extract(epoch FROM min(next_run_at) - clock_timestamp())::float8"
                " FROM workflow_schedules"
            )
            await asyncio.sleep(max(0.0, wait - 0.3))
            cpu_before = cpu_seconds({p.pid for p in procs})
            deadline = time.monotonic() + 300
            # Watched on the stream while it fills (counting rows would scan the table
            # under the schedulers' feet), then on the rows' published marks.
            stream = Topology(settings.namespace).runs_stream
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                if (await js.stream_info(stream)).state.messages >= count:
                    break
            published = 0
            while published < count and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                published = await pool.fetchval(
                    "SELECT count(*) FROM workflow_runs WHERE published_at IS NOT NULL"
                )
            cpu = cpu_per_fire(cpu_before, cpu_seconds({p.pid for p in procs}), count)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                await asyncio.wait_for(proc.wait(), 30)
        seconds = await pool.fetchval(
            "SELECT extract(epoch FROM max(published_at) - min(created_at))::float8"
            " FROM workflow_runs"
        )
        created = await pool.fetchval("SELECT count(*) FROM workflow_runs")
        stream = await js.stream_info(Topology(settings.namespace).runs_stream)
    assert created == count == published == stream.state.messages, (created, published)
    return {
        "schedules": count,
        "batch_size": batch,
        "scheduler_processes": processes,
        "seconds": round(seconds, 3),
        "fires_per_second": round(count / seconds, 1),
        "cpu_us_per_fire": cpu,
    }


def cpu_seconds(schedulers: set[int]) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU time (user + system) of every scheduler, Postgres and NATS server process,
    keyed by (pid, start time) so a new process with an old pid is not mistaken."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[tuple[int, int], tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        if pid in schedulers:
            part = "scheduler"
        elif name in ("postgres", "nats-server"):
            part = name.replace("-", "_")
        else:
            continue
        found[(pid, int(fields[19]))] = (part, (int(fields[11]) + int(fields[12])) / tick)
    return found


def cpu_per_fire(
    before: dict[tuple[int, int], tuple[str, float]],
    after: dict[tuple[int, int], tuple[str, float]],
    fires: int,
) -> dict[str, float]:
    """Microseconds of CPU per fire, by process kind, between two :func:`cpu_seconds`
    readings (a process started in between counts from zero; the bench's own Postgres
    connection and every other database on the server are in "postgres")."""
    used: dict[str, float] = {"scheduler": 0.0, "postgres": 0.0, "nats_server": 0.0}
    for key, (part, seconds) in after.items():
        used[part] += seconds - before.get(key, (part, 0.0))[1]
    per_fire = {part: round(seconds / fires * 1e6, 1) for part, seconds in used.items()}
    per_fire["total"] = round(sum(used.values()) / fires * 1e6, 1)
    return per_fire


async def precision(count: int, minutes: float) -> dict[str, Any]:
    """``count`` schedules spread over each minute (six-field crons, one per second
    offset), the scheduler loop running for ``minutes``: lag from fire time to the run
    message acknowledged (recorded as published_at, database clock)."""
    async with environment(500) as (settings, pool, nc, js):
        org, wf = await seed_workflow(pool)
        await pool.execute(
            """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at)
               SELECT gen_random_uuid(), $1, $2, (i % 60) || ' * * * * *', NULL
               FROM generate_series(1, $3) AS i""",
            org,
            wf,
            count,
        )
        # First fires: the next occurrence of each schedule's second, from 2 s ahead.
        await pool.execute(
            """UPDATE workflow_schedules SET next_run_at =
                 date_trunc('minute', now() + interval '2 seconds')
                 + make_interval(secs => split_part(cron, ' ', 1)::int)
                 + CASE WHEN date_trunc('minute', now() + interval '2 seconds')
                             + make_interval(secs => split_part(cron, ' ', 1)::int)
                             <= now() + interval '2 seconds'
                        THEN interval '1 minute' ELSE interval '0' END"""
        )
        stop = asyncio.Event()
        async with ack_pipeline(nc) as pipeline, listening(settings.database_url) as wakeup:
            ticker = Ticker(settings, pool, js, wakeup, pipeline=pipeline)
            loop = asyncio.create_task(ticker.run(stop))
            await asyncio.sleep(minutes * 60)  # the benchmark's duration, by design
            stop.set()
            await loop
        lags = await pool.fetch(
            """SELECT EXTRACT(EPOCH FROM (published_at - scheduled_for)) * 1000 AS ms
               FROM workflow_runs WHERE published_at IS NOT NULL ORDER BY 1"""
        )
    values = [float(r["ms"]) for r in lags]
    return {
        "schedules": count,
        "minutes": minutes,
        "fires": len(values),
        "lag_ms_p50": round(statistics.median(values), 2),
        "lag_ms_p99": round(values[int(len(values) * 0.99) - 1], 2),
        "lag_ms_max": round(values[-1], 2),
    }


async def size(count: int) -> dict[str, Any]:
    """``count`` stored schedules: the claim query's time and a scheduler process's RSS."""
    async with environment(500) as (settings, pool, _nc, _js):
        org, wf = await seed_workflow(pool)
        started = time.perf_counter()
        await pool.execute(
            """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at)
               SELECT gen_random_uuid(), $1, $2, '0 0 1 1 *',
                      now() + (i % 100000) * interval '1 minute'
               FROM generate_series(1, $3) AS i""",
            org,
            wf,
            count,
        )
        await pool.execute("ANALYZE workflow_schedules")
        seeded = time.perf_counter() - started
        # A thousand of them due now, every few seconds, while the process runs.
        await pool.execute(
            "UPDATE workflow_schedules SET cron = '*/5 * * * * *', next_run_at = now()"
            " WHERE id IN (SELECT id FROM workflow_schedules LIMIT 1000)"
        )
        plan_ms = []
        async with pool.acquire() as conn:
            for _ in range(20):
                async with conn.transaction():
                    t0 = time.perf_counter()
                    await conn.fetch(CLAIM_DUE, 500)  # locks, then lets go: no writes
                    plan_ms.append((time.perf_counter() - t0) * 1000)
        proc = await start_scheduler(settings)
        try:
            peak = 0
            for _ in range(30):  # 15 s of firing a thousand schedules every 5 s
                await asyncio.sleep(0.5)
                peak = max(peak, _rss_kib(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        fired = await pool.fetchval("SELECT count(*) FROM workflow_runs")
    return {
        "schedules": count,
        "seed_seconds": round(seeded, 1),
        "claim_query_ms_p50": round(statistics.median(plan_ms), 2),
        "claim_query_ms_max": round(max(plan_ms), 2),
        "scheduler_rss_mb_peak": round(peak / 1024, 1),
        "runs_fired_while_measured": fired,
    }


async def start_scheduler(settings: Settings) -> asyncio.subprocess.Process:
    """``python -m services.scheduler`` on the benchmark's database and namespace."""
    env = {
        **os.environ,
        "FLOWCRON_DATABASE_URL": settings.database_url,
        "FLOWCRON_NATS_URL": settings.nats_url,
        "FLOWCRON_NAMESPACE": settings.namespace,
        "FLOWCRON_SCHEDULER_BATCH_SIZE": str(settings.scheduler_batch_size),
        "FLOWCRON_LOG_LEVEL": "warning",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.scheduler", cwd=ROOT, env=env
    )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def seed_workflow(pool: Pool) -> tuple[uuid.UUID, uuid.UUID]:
    org, wf = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO organizations (id, name) VALUES ($1, 'bench')", org)
    await pool.execute(
        "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, 'bench', $3)",
        wf,
        org,
        GRAPH,
    )
    return org, wf


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", choices=("burst", "precision", "size", "all"), nargs="?", default="burst"
    )
    parser.add_argument("--schedules", type=int, default=None)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="burst: fired by this many scheduler processes (0: one ticker in this process)",
    )
    args = parser.parse_args()
    configure_logging("console", os.environ.get("FLOWCRON_LOG_LEVEL", "warning"))
    figures: dict[str, Any] = {}
    if args.mode in ("burst", "all"):
        schedules = args.schedules or 100_000
        figures["burst"] = asyncio.run(
            burst_processes(schedules, args.batch, args.processes)
            if args.processes
            else burst(schedules, args.batch)
        )
    if args.mode in ("precision", "all"):
        figures["precision"] = asyncio.run(precision(args.schedules or 2000, args.minutes))
    if args.mode in ("size", "all"):
        figures["size"] = asyncio.run(size(args.schedules or 1_000_000))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"scheduler-{args.mode}.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
