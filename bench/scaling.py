"""Executor scaling benchmark: 1, 2 and 3 executor processes on the same queued work.

Each run has one step, an ``http_request`` to a local aiohttp server that answers after
50 ms, so a replica's throughput is bounded by its concurrency (at most
``concurrency / 0.05`` runs per second), not by the CPU. For each replica count the
runs are queued at once, after every replica is pulling; the figures are the time
until every run has succeeded, the throughput, and each replica's share (from
``workflow_runs.executor_id``).

    .venv/bin/python bench/scaling.py --runs 300 --concurrency 2

Uses FLOWCRON_BENCH_DATABASE_URL / FLOWCRON_BENCH_NATS_URL (default: the local servers,
or embedded ones when none answers), in a fresh database and namespace dropped
afterwards. Prints the figures and writes them to bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.apikeys import ensure_organization
from shared.db.migrator import migrate
from shared.db.pool import Pool, open_pool
from shared.logging import configure_logging
from shared.messaging.connection import open_nats
from shared.messaging.topology import Topology, delete_topology, ensure_topology
from shared.settings import Settings
from tests.deploy import scaling
from tests.deploy.processes import command_argv, processes, settings_environment
from tests.servers import test_servers
from tests.waiting import wait_for

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.json"


async def one_round(
    settings: Settings, pool: Pool, js: Any, org_id: uuid.UUID, url: str, replicas: int, runs: int
) -> dict[str, Any]:
    topology = Topology(settings.namespace)
    workflow_id = await scaling.create_workflow(pool, org_id, scaling.http_graph(url))
    with tempfile.TemporaryDirectory() as logs, processes(Path(logs)) as group:
        env = settings_environment(settings)
        pids = [
            group.start(f"executor-{i}", command_argv("flowcron", "executor"), env).pid
            for i in range(1, replicas + 1)
        ]
        await wait_for(
            lambda: scaling.pulling(js, topology, replicas), timeout=60, message="replicas"
        )
        started = time.perf_counter()
        await scaling.queue_runs(pool, js, topology, org_id, workflow_id, runs)

        async def done() -> bool:
            counts = await scaling.status_counts(pool, workflow_id)
            return counts.get("succeeded", 0) == runs

        await wait_for(done, timeout=600, interval=0.02, message=f"{runs} runs")
        seconds = time.perf_counter() - started
        shares = await scaling.shares_by_pid(pool, workflow_id)
        codes = await asyncio.to_thread(group.stop_all)
    assert all(code == 0 for code in codes.values()), codes
    return {
        "replicas": replicas,
        "runs": runs,
        "seconds": round(seconds, 3),
        "runs_per_second": round(runs / seconds, 1),
        "ceiling_runs_per_second": round(replicas * settings.executor_concurrency / 0.05, 1),
        "shares": [shares.get(pid, 0) for pid in pids],
    }


async def main(runs: int, concurrency: int, counts: list[int]) -> dict[str, Any]:
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as workdir, test_servers(Path(workdir)) as found:
        server = os.environ.get("FLOWCRON_BENCH_DATABASE_URL", found.postgres_url)
        nats_url = os.environ.get("FLOWCRON_BENCH_NATS_URL", found.nats_url)
        database = f"flowcron_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(server)
        await admin.execute(f'CREATE DATABASE "{database}"')
        settings = Settings(
            database_url=server.rsplit("/", 1)[0] + "/" + database,
            nats_url=nats_url,
            namespace=f"bench{uuid.uuid4().hex[:6]}",
            executor_concurrency=concurrency,
            log_level="warning",
        )
        topology = Topology(settings.namespace)
        try:
            async with (
                open_pool(settings.database_url, max_size=4) as pool,
                open_nats(settings.nats_servers, name="bench") as nc,
                scaling.slow_server() as url,
            ):
                async with pool.acquire() as conn:
                    await migrate(conn)
                    org_id = await ensure_organization(conn, "bench")
                js = nc.jetstream()
                await ensure_topology(js, topology)
                try:
                    rounds = [
                        await one_round(settings, pool, js, org_id, url, n, runs) for n in counts
                    ]
                finally:
                    await delete_topology(js, topology)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()
    return {"step": "http_request, 50 ms", "concurrency": concurrency, "rounds": rounds}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per round (default 300)")
    parser.add_argument("--concurrency", type=int, default=2, help="per replica (default 2)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    figures = asyncio.run(main(args.runs, args.concurrency, args.replicas))
    print(f"runs of one http_request step (50 ms), concurrency {args.concurrency} per replica")
    print("replicas  seconds  runs/s  ceiling  share per replica")
    for r in figures["rounds"]:
        print(
            f"{r['replicas']:>8}  {r['seconds']:>7.2f}  {r['runs_per_second']:>6.1f}"
            f"  {r['ceiling_runs_per_second']:>7.1f}  {r['shares']}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    cli()
