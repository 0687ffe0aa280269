"""Executor benchmarks (issue 4), each against real executor processes.

    .venv/bin/python bench/executor.py [--runs 6000] [--samples 200] [--inflight 1000]

1. throughput: trivial runs (trigger → log_message) all queued before the replicas
   start; runs per second between the first claim and the last finish (database
   timestamps), with 1 and with 2 replicas.
2. pickup: one run at a time at low load; message published → run ``running``
   (``started_at``), p50 / p99.
3. step overhead: mean run duration of a 20-step linear workflow minus that of a
   1-step one, divided by 19, for ``transform`` steps (one write each) and
   ``log_message`` steps (step start, log line, step end).
4. memory: RSS of one replica holding ``--inflight`` runs, each in a 60 s ``delay``.

Uses FLOWCRON_BENCH_DATABASE_URL / FLOWCRON_BENCH_NATS_URL (default: the local servers)
in a fresh database and namespace per measurement, dropped afterwards. Prints the
figures and writes them to bench/results/executor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from nats.js import JetStreamContext

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.db.migrator import migrate  # noqa: E402  # after the path is set
from shared.db.pool import Pool, open_pool  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from shared.messaging.connection import open_nats  # noqa: E402
from shared.messaging.topology import (  # noqa: E402
    EXECUTORS_CONSUMER,
    Topology,
    delete_topology,
    ensure_topology,
)
from shared.models.messages import RunMessage  # noqa: E402
from shared.settings import Settings  # noqa: E402

SERVER = os.environ.get(
    "FLOWCRON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS = os.environ.get("FLOWCRON_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def chain(kind: str, count: int, **config: Any) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger"}]
    for i in range(count):
        node: dict[str, Any] = {"id": f"s{i}", "type": kind, "config": dict(config)}
        if kind not in ("transform",):
            node = {"id": f"s{i}", "type": "action", "action": kind, "config": dict(config)}
        nodes.append(node)
    ids = [n["id"] for n in nodes]
    return {
        "nodes": nodes,
        "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


TRIVIAL = chain("log_message", 1, message="hello {{ run.id }}")


class Env:
    def __init__(self, settings: Settings, pool: Pool, js: JetStreamContext) -> None:
        self.settings = settings
        self.pool = pool
        self.js = js
        self.topology = Topology(settings.namespace)
        self.org = uuid.uuid4()
        self.procs: list[subprocess.Popen[bytes]] = []

    async def workflow(self, graph: dict[str, Any]) -> uuid.UUID:
        wf = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO workflows (id, org_id, name, graph) VALUES ($1, $2, 'bench', $3)",
            wf,
            self.org,
            graph,
        )
        await self.pool.execute(
            "INSERT INTO workflow_versions (workflow_id, version, org_id, graph)"
            " VALUES ($1, 1, $2, $3)",
            wf,
            self.org,
            graph,
        )
        return wf

    async def runs(self, wf: uuid.UUID, count: int) -> list[RunMessage]:
        rows = await self.pool.fetch(
            "INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, trigger)"
            " SELECT gen_random_uuid(), $1, $2, 1, 'manual' FROM generate_series(1, $3)"
            " RETURNING id",
            self.org,
            wf,
            count,
        )
        return [
            RunMessage(
                run_id=r["id"],
                org_id=self.org,
                workflow_id=wf,
                workflow_version=1,
                trigger="manual",
            )
            for r in rows
        ]

    async def publish(self, messages: list[RunMessage]) -> None:
        subject = self.topology.run_subject(self.org, messages[0].workflow_id)
        for start in range(0, len(messages), 500):
            batch = messages[start : start + 500]
            await asyncio.gather(
                *(
                    self.js.publish(
                        subject,
                        m.to_bytes(),
                        stream=self.topology.runs_stream,
                        headers={"Nats-Msg-Id": str(m.run_id)},
                    )
                    for m in batch
                )
            )

    def start(self, replicas: int, concurrency: int) -> None:
        env = {
            **os.environ,
            "FLOWCRON_DATABASE_URL": self.settings.database_url,
            "FLOWCRON_NATS_URL": self.settings.nats_url,
            "FLOWCRON_NAMESPACE": self.settings.namespace,
            "FLOWCRON_EXECUTOR_CONCURRENCY": str(concurrency),
            "FLOWCRON_DATABASE_POOL_MAX": "10",
            "FLOWCRON_LOG_LEVEL": "warning",
        }
        # FLOWCRON_BENCH_PROFILE=path: the first replica runs under cProfile.
        profile = os.environ.get("FLOWCRON_BENCH_PROFILE")
        for i in range(replicas):
            prefix = ["-m", "cProfile", "-o", profile] if profile and i == 0 else []
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, *prefix, "-m", "services.executor"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    async def pulling(self, replicas: int) -> None:
        while True:
            info = await self.js.consumer_info(self.topology.runs_stream, EXECUTORS_CONSUMER)
            if (info.num_waiting or 0) >= replicas:
                return
            await asyncio.sleep(0.05)

    async def until_finished(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await self.pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE status IN ('succeeded', 'failed')"
            )
            if done >= count:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"runs not finished within {timeout}s")

    async def ended(self, run_id: uuid.UUID) -> None:
        """Poll (every 2 ms, so as not to add to the run's time) until the run ends."""
        query = "SELECT status IN ('succeeded', 'failed') FROM workflow_runs WHERE id = $1"
        done = False
        while not done:
            done = bool(await self.pool.fetchval(query, run_id))
            await asyncio.sleep(0 if done else 0.002)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@asynccontextmanager
async def environment() -> AsyncIterator[Env]:
    database = f"flowcron_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + database
    settings = Settings(database_url=url, nats_url=NATS, namespace=f"bx{uuid.uuid4().hex[:6]}")
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
            env = Env(settings, pool, js)
            await pool.execute("INSERT INTO organizations (id, name) VALUES ($1, 'bench')", env.org)
            try:
                yield env
            finally:
                env.stop()
                await delete_topology(js, topology)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def throughput(runs: int, replicas: int) -> dict[str, Any]:
    async with environment() as env:
        wf = await env.workflow(TRIVIAL)
        await env.publish(await env.runs(wf, runs))
        env.start(replicas, concurrency=256)
        await env.until_finished(runs)
        seconds = await env.pool.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM workflow_runs"
        )
        failed = await env.pool.fetchval(
            "SELECT count(*) FROM workflow_runs WHERE status <> 'succeeded'"
        )
    return {
        "replicas": replicas,
        "runs": runs,
        "seconds": round(seconds, 3),
        "runs_per_s": round(runs / seconds, 1),
        "not_succeeded": failed,
    }


async def pickup(samples: int) -> dict[str, Any]:
    async with environment() as env:
        wf = await env.workflow(TRIVIAL)
        env.start(1, concurrency=16)
        await env.pulling(1)
        messages = await env.runs(wf, samples + 10)
        sent: dict[uuid.UUID, datetime] = {}
        for message in messages:
            sent[message.run_id] = datetime.now(UTC)
            await env.publish([message])
            await asyncio.sleep(0.02)  # low load: one run at a time
        await env.until_finished(len(messages))
        rows = await env.pool.fetch("SELECT id, started_at FROM workflow_runs")
    lat = sorted((r["started_at"] - sent[r["id"]]).total_seconds() * 1000 for r in rows)[10:]
    return {
        "samples": len(lat),
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2),
        "max_ms": round(lat[-1], 2),
    }


async def step_overhead(kind: str, runs: int) -> dict[str, Any]:
    config = {"value": "{{ run.id }}"} if kind == "transform" else {"message": "step {{ run.id }}"}
    durations: dict[int, float] = {}
    async with environment() as env:
        env.start(1, concurrency=16)
        await env.pulling(1)
        for steps in (1, 20):
            wf = await env.workflow(chain(kind, steps, **config))
            messages = await env.runs(wf, runs)
            for message in messages:  # one at a time: the run's own latency, not queueing
                await env.publish([message])
                await env.ended(message.run_id)
            values = await env.pool.fetch(
                "SELECT extract(epoch FROM finished_at - started_at)::float8 AS d"
                " FROM workflow_runs WHERE workflow_id = $1",
                wf,
            )
            durations[steps] = statistics.mean(sorted(v["d"] for v in values)[2:]) * 1000
    per_step = (durations[20] - durations[1]) / 19
    return {
        "kind": kind,
        "run_1_step_ms": round(durations[1], 2),
        "run_20_steps_ms": round(durations[20], 2),
        "per_step_ms": round(per_step, 3),
    }


async def memory(inflight: int) -> dict[str, Any]:
    async with environment() as env:
        wf = await env.workflow(chain("delay", 1, seconds=60))
        env.start(1, concurrency=inflight + 10)
        await env.pulling(1)
        idle = _rss_mib(env.procs[0].pid)
        await env.publish(await env.runs(wf, inflight))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = await env.pool.fetchval(
                "SELECT count(*) FROM run_steps WHERE node_id = 's0' AND status = 'running'"
            )
            if waiting >= inflight:
                break
            await asyncio.sleep(0.1)
        rss = _rss_mib(env.procs[0].pid)
        env.procs[0].kill()  # nothing to drain: the runs would wait a minute
    return {"runs_in_flight": waiting, "rss_mib": round(rss, 1), "idle_rss_mib": round(idle, 1)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"cpus": os.cpu_count()}
    figures["throughput"] = [await throughput(args.runs, n) for n in (1, 2)]
    print(json.dumps(figures["throughput"]), flush=True)
    if args.only == "throughput":
        return figures
    figures["pickup"] = await pickup(args.samples)
    print(json.dumps(figures["pickup"]), flush=True)
    figures["step_overhead"] = [
        await step_overhead(k, args.step_runs) for k in ("transform", "log_message")
    ]
    print(json.dumps(figures["step_overhead"]), flush=True)
    figures["memory"] = await memory(args.inflight)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--step-runs", type=int, default=30)
    parser.add_argument("--inflight", type=int, default=1000)
    parser.add_argument("--only", choices=("throughput",), help="measure only this")
    args = parser.parse_args()
    configure_logging("console", "warning")
    results = asyncio.run(main(args))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "executor.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
