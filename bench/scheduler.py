"""Scheduler burst benchmark: N schedules due at the same instant.

Measures the time from the first claim until every run row is written and every run
message is acknowledged by JetStream, with one scheduler process (this one).

    .venv/bin/python bench/scheduler.py --schedules 10000

Uses FLOWCRON_BENCH_DATABASE_URL / FLOWCRON_BENCH_NATS_URL (default: the local servers),
in a fresh database and namespace that are dropped afterwards. Prints the figures and
writes them to bench/results/scheduler.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.scheduler.ticker import Ticker
from shared.db.migrator import migrate
from shared.db.pool import open_pool
from shared.logging import configure_logging
from shared.messaging.connection import open_nats
from shared.messaging.pipeline import AckPipeline
from shared.messaging.topology import Topology, delete_topology, ensure_topology
from shared.settings import Settings

SERVER = os.environ.get(
    "FLOWCRON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS = os.environ.get("FLOWCRON_BENCH_NATS_URL", "nats://127.0.0.1:4222")
GRAPH = {"nodes": [{"id": "t", "type": "trigger"}], "edges": []}


async def seed(pool: asyncpg.Pool, count: int) -> None:
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
           SELECT gen_random_uuid(), $1, $2, '* * * * *', date_trunc('minute', now())
           FROM generate_series(1, $3)""",
        org,
        wf,
        count,
    )


async def main(count: int, batch: int) -> dict[str, float]:
    configure_logging("console", os.environ.get("FLOWCRON_LOG_LEVEL", "warning"))
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
            await seed(pool, count)
            pipeline = AckPipeline(nc)
            await pipeline.start()
            ticker = Ticker(settings, pool, js, pipeline=pipeline)
            started = time.perf_counter()
            created = published = 0
            while (result := await ticker.tick()).claimed:
                created += result.created
                published += result.published
            elapsed = time.perf_counter() - started
            stream = await js.stream_info(topology.runs_stream)
            await delete_topology(js, topology)
        assert created == count == published == stream.state.messages, (created, published)
        return {
            "schedules": count,
            "batch_size": batch,
            "seconds": round(elapsed, 3),
            "fires_per_second": round(count / elapsed, 1),
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    figures = asyncio.run(main(args.schedules, args.batch))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scheduler.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
