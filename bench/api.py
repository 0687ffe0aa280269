"""API benchmark (issue 5): latency and throughput at 50 concurrent clients.

    .venv/bin/python bench/api.py [--schedules 10000] [--runs 1000000] [--requests 4000]

Seeds one organization with ``--schedules`` schedules (over 100 workflows) and
``--runs`` runs spread over the last 30 days (``INSERT … SELECT generate_series``),
runs ``VACUUM ANALYZE``, starts the API as its own process (``python -m
services.api``), and measures, with ``--clients`` concurrent clients in this process:

* ``GET /api/schedules`` (first page of 50)
* ``GET /api/runs?status=failed`` (first page)
* ``GET /api/stats``
* ``POST /api/workflows/{id}/runs`` (written, then published to JetStream)

Uses FLOWCRON_BENCH_DATABASE_URL / FLOWCRON_BENCH_NATS_URL (default: the local servers),
in a fresh database and namespace dropped afterwards. Prints the figures and writes
them to bench/results/api.json. The load generator shares the machine's cores with the
API process and Postgres, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowcron.embedded import free_port
from services.api.queries import stats as stats_sql
from shared.apikeys import create_key
from shared.db.migrator import migrate
from shared.messaging.connection import open_nats
from shared.messaging.topology import Topology, delete_topology

SERVER = os.environ.get(
    "FLOWCRON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS = os.environ.get("FLOWCRON_BENCH_NATS_URL", "nats://127.0.0.1:4222")
ROOT = Path(__file__).resolve().parents[1]
GRAPH = {"nodes": [{"id": "t", "type": "trigger"}], "edges": []}
WORKFLOWS = 100

_SEED_RUNS = """
INSERT INTO workflow_runs
    (id, org_id, workflow_id, workflow_version, schedule_id, trigger, scheduled_for,
     status, created_at, started_at, finished_at)
SELECT gen_random_uuid(), $1, s.workflow_id, 1, s.id, 'schedule', t.at,
       CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 97 = 0 THEN 'timed_out'
            WHEN g % 211 = 0 THEN 'cancelled' ELSE 'succeeded' END,
       t.at, t.at, t.at + make_interval(secs => (g % 5000) / 1000.0)
FROM generate_series(1, $2) AS g
JOIN LATERAL (SELECT now() - make_interval(secs => (g::double precision * $3)) AS at) t ON true
JOIN schedules_by_n s ON s.n = g % $4
"""


async def seed(conn: asyncpg.Connection, schedules: int, runs: int) -> tuple[str, str]:
    """The organization's rows; returns (API key, a workflow id)."""
    org = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'bench')", org)
    await conn.execute(
        """INSERT INTO workflows (id, org_id, name, graph)
           SELECT gen_random_uuid(), $1, 'bench ' || i, $2 FROM generate_series(1, $3) AS i""",
        org,
        GRAPH,
        WORKFLOWS,
    )
    await conn.execute(
        """INSERT INTO workflow_versions (workflow_id, version, org_id, graph)
           SELECT id, 1, org_id, graph FROM workflows"""
    )
    await conn.execute(
        """INSERT INTO workflow_schedules (id, org_id, workflow_id, cron, next_run_at,
                                          created_at)
           SELECT gen_random_uuid(), $1, w.id, '0 * * * *', now() + interval '1 hour',
                  now() - make_interval(secs => i)
           FROM generate_series(1, $2) AS i
           JOIN (SELECT id, row_number() OVER () - 1 AS n FROM workflows) w
             ON w.n = i % $3""",
        org,
        schedules,
        WORKFLOWS,
    )
    await conn.execute(
        """CREATE TEMP TABLE schedules_by_n AS
           SELECT id, workflow_id, row_number() OVER (ORDER BY id) - 1 AS n
           FROM workflow_schedules"""
    )
    await conn.execute("CREATE INDEX ON schedules_by_n (n)")
    spacing_s = 30 * 86_400 / runs  # a month of runs, newest now
    await conn.execute(_SEED_RUNS, org, runs, spacing_s, schedules)
    await conn.execute("VACUUM ANALYZE")
    await conn.execute("CHECKPOINT")  # the seed's writes are flushed now, not while measuring
    key = await create_key(conn, org, name="bench", role="admin")
    workflow = await conn.fetchval("SELECT id FROM workflows ORDER BY id LIMIT 1")
    return key.key, str(workflow)


async def time_stats_query(conn: asyncpg.Connection, repeat: int = 20) -> dict[str, Any]:
    """The stats statement itself (no cache, no HTTP) over the last 24 hours, and
    whether Postgres answers it from the covering index alone."""
    org = await conn.fetchval("SELECT id FROM organizations")
    args = (org, 24, None, None)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await conn.fetchrow(stats_sql._STATS, *args)
        times.append(time.perf_counter() - started)
    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + stats_sql._STATS, *args))
    in_window = await conn.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE created_at >= now() - interval '24 hours'"
    )
    times.sort()
    return {
        "runs_in_window": in_window,
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "max_ms": round(times[-1] * 1000, 2),
        "index_only_scan": "Index Only Scan using workflow_runs_org_created_stats" in plan,
    }


async def _ready(base: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError("the API exited at start")
            try:
                async with session.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # polling a process start-up, not a test
    raise RuntimeError("the API did not become ready")


Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


async def measure(request: Request, clients: int, total: int) -> dict[str, Any]:
    """``total`` requests by ``clients`` concurrent workers (after a warm-up)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(request(session) for _ in range(clients * 2)))
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                status = await request(session)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


_WRK_POST = """
wrk.method = "POST"
wrk.body = '{"input": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
"""
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"wrk printed an unknown latency {text!r}")
    return round(float(match[1]) * _WRK_UNITS[match[2]], 2)


async def measure_wrk(
    url: str, headers: dict[str, str], *, post: bool, clients: int, seconds: int
) -> dict[str, Any]:
    """The same measurement by wrk (C, one thread), so the load generator takes little
    of the two cores the API and Postgres need. Warm-up first, then ``seconds``."""
    args = ["wrk", "-t", "1", "-c", str(clients), "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_POST if post else "")
    args += ["-s", script.name]
    try:
        for duration in (2, seconds):
            process = await asyncio.create_subprocess_exec(
                *args, "-d", f"{duration}s", url, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await process.communicate()
    finally:
        os.unlink(script.name)
    text = out.decode()
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M))
    total = int(re.search(r"^\s+(\d+) requests in", text, re.M)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": total,
        "non_2xx": int(errors[1]) if errors else 0,
        "requests_per_second": float(re.search(r"Requests/sec:\s+([0-9.]+)", text)[1]),  # type: ignore[index]
        "p50_ms": _wrk_ms(percentiles["50"]),
        "p99_ms": _wrk_ms(percentiles["99"]),
        "max_ms": _wrk_ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text)[1]),  # type: ignore[index]
        "load_generator": "wrk",
    }


def _get(url: str, headers: dict[str, str]) -> Request:
    async def call(session: aiohttp.ClientSession) -> int:
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            return resp.status

    return call


def _post(url: str, headers: dict[str, str]) -> Request:
    async def call(session: aiohttp.ClientSession) -> int:
        async with session.post(url, json={"input": {"n": 1}}, headers=headers) as resp:
            await resp.read()
            return resp.status

    return call


async def main(args: argparse.Namespace) -> dict[str, Any]:
    reuse = args.database is not None
    database = args.database or f"flowcron_bench_{uuid.uuid4().hex[:8]}"
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(SERVER)
    if not reuse:
        await admin.execute(f'CREATE DATABASE "{database}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + database
    processes: list[asyncio.subprocess.Process] = []
    try:
        conn = await asyncpg.connect(url)
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        try:
            started = time.perf_counter()
            if reuse:
                org = await conn.fetchval("SELECT id FROM organizations")
                key = (await create_key(conn, org, name="bench", role="admin")).key
                workflow = str(await conn.fetchval("SELECT id FROM workflows ORDER BY id LIMIT 1"))
            else:
                await migrate(conn)
                key, workflow = await seed(conn, args.schedules, args.runs)
            seed_s = time.perf_counter() - started
            stats_query = await time_stats_query(conn)
        finally:
            await conn.close()
        port = free_port()
        env = {
            **os.environ,
            "FLOWCRON_DATABASE_URL": url,
            "FLOWCRON_NATS_URL": NATS,
            "FLOWCRON_NAMESPACE": namespace,
            "FLOWCRON_API_PORT": str(port),
            "FLOWCRON_LOG_LEVEL": "warning",
            "FLOWCRON_DATABASE_POOL_MAX": str(args.pool),
            "FLOWCRON_API_REUSE_PORT": "true" if args.processes > 1 else "false",
        }
        for _ in range(args.processes):  # several share the port (SO_REUSEPORT)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.api", cwd=ROOT, env=env
            )
            processes.append(process)
            await _ready(f"http://127.0.0.1:{port}", process)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        cases = {
            "GET /api/schedules": _get(f"{base}/api/schedules?limit=50", headers),
            "GET /api/runs?status=failed": _get(f"{base}/api/runs?status=failed", headers),
            "GET /api/stats": _get(f"{base}/api/stats", headers),
            "POST /api/workflows/{id}/runs": _post(
                f"{base}/api/workflows/{workflow}/runs", headers
            ),
        }
        figures: dict[str, Any] = {
            "schedules": args.schedules,
            "runs": args.runs,
            "clients": args.clients,
            "api_pool_max": args.pool,
            "api_processes": args.processes,
            "seed_seconds": round(seed_s, 1),
            "stats_query_uncached": stats_query,
            "cpus": os.cpu_count(),
            "endpoints": {},
        }
        use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk"))
        figures["load_generator"] = "wrk" if use_wrk else "python"
        urls = {
            "GET /api/schedules": f"{base}/api/schedules?limit=50",
            "GET /api/runs?status=failed": f"{base}/api/runs?status=failed",
            "GET /api/stats": f"{base}/api/stats",
            "POST /api/workflows/{id}/runs": f"{base}/api/workflows/{workflow}/runs",
        }
        for name, request in cases.items():
            if args.only and args.only not in name:
                continue
            if use_wrk:
                result = await measure_wrk(
                    urls[name],
                    headers,
                    post=name.startswith("POST"),
                    clients=args.clients,
                    seconds=args.seconds,
                )
            else:
                result = await measure(request, args.clients, args.requests)
            figures["endpoints"][name] = result
            print(name, result, flush=True)
        return figures
    finally:
        for process in processes:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
        async with open_nats([NATS], name="bench") as nc:
            await delete_topology(nc.jetstream(), Topology(namespace))
        if args.keep or reuse:
            print(f"kept database {database} (reuse it with --database {database})", flush=True)
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument(
        "--processes", type=int, default=1, help="API processes sharing the port (reuse_port)"
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk (Debian package) when installed, else this process",
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk: seconds per endpoint")
    parser.add_argument("--only", help="measure only endpoints whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument("--database", help="reuse a database kept by --keep (no seeding)")
    figures = asyncio.run(main(parser.parse_args()))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
