"""Compose without containers: each compose service's command as a local process.

The environment of each service comes from docker-compose.yml interpolated with
.env.example; the compose host names `postgres` and `nats` are mapped to this test's
servers (its own database and namespace). migrate runs once, then the api, two
schedulers and three executors run the every-second pipeline through the HTTP API,
and every process exits cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from flowcron.embedded import free_port
from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.deploy import composefile
from tests.deploy.processes import ROOT, clean_environment, command_argv, processes
from tests.e2e.test_pipeline import GRAPH
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
# The e2e graph plus a 2.5 s step, and one run in flight per executor: with a run
# fired every second, three consecutive runs cannot share a replica, so the work is
# seen spread over the three executors within seconds (the pull order alone is not
# round-robin).
RUN_S = 2.5
SLOW_GRAPH: dict[str, Any] = {
    **GRAPH,
    "nodes": [
        *GRAPH["nodes"],
        {"id": "wait", "type": "action", "action": "delay", "config": {"seconds": RUN_S}},
    ],
    "edges": [*GRAPH["edges"], {"from": "say", "to": "wait"}],
}


def service_environment(
    service: dict[str, Any], settings: Settings, api_port: int
) -> dict[str, str]:
    env = composefile.environment(service)
    # The compose network's host names, mapped to this test's servers.
    assert urlsplit(env["FLOWCRON_DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["FLOWCRON_NATS_URL"]).hostname == "nats"
    env["FLOWCRON_DATABASE_URL"] = settings.database_url
    env["FLOWCRON_NATS_URL"] = settings.nats_url
    env["FLOWCRON_NAMESPACE"] = settings.namespace
    env["FLOWCRON_EXECUTOR_ACK_WAIT_S"] = str(settings.executor_ack_wait_s)
    if "FLOWCRON_EXECUTOR_CONCURRENCY" in env:
        env["FLOWCRON_EXECUTOR_CONCURRENCY"] = "1"
    if "FLOWCRON_API_HOST" in env:  # loopback here; each container has its own address
        env["FLOWCRON_API_HOST"] = "127.0.0.1"
    if "FLOWCRON_API_PORT" in env:  # the published port
        env["FLOWCRON_API_PORT"] = str(api_port)
    return env


def replica_environment(env: dict[str, str]) -> tuple[dict[str, str], int | None]:
    """A replica's own metrics port: on one host, replicas cannot share the one that
    each container has to itself."""
    for name in ("FLOWCRON_SCHEDULER_METRICS_PORT", "FLOWCRON_EXECUTOR_METRICS_PORT"):
        if env.get(name, "0") != "0":
            port = free_port()
            return {**env, name: str(port)}, port
    return env, None


def argv(service: dict[str, Any]) -> list[str]:
    return command_argv(*service["command"])


async def test_compose_services_as_processes_run_the_pipeline(
    settings: Settings, js: object, org: Org, pool: Pool, tmp_path: Path
) -> None:
    services = composefile.resolved()["services"]
    port = free_port()

    migrate = await asyncio.to_thread(
        subprocess.run,
        argv(services["migrate"]),
        env={**_base_env(), **service_environment(services["migrate"], settings, port)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "migrations applied" in migrate.stdout

    with processes(tmp_path) as group:
        metrics_ports: dict[str, int] = {}
        for name in ("api", "scheduler", "executor"):
            env = service_environment(services[name], settings, port)
            for replica in range(1, composefile.replicas(services[name]) + 1):
                replica_env, metrics_port = replica_environment(env)
                if metrics_port is not None:
                    metrics_ports[f"{name}-{replica}"] = metrics_port
                group.start(f"{name}-{replica}", argv(services[name]), replica_env)
        assert [p.name for p in group.started] == [
            "api-1",
            "scheduler-1",
            "scheduler-2",
            "executor-1",
            "executor-2",
            "executor-3",
        ]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base_url=base, headers=org.headers) as http:
            await _wait_ready(http)
            await asyncio.to_thread(_healthchecks_pass, services, settings, port)
            workflow_id = await _every_second_schedule(http)
            shares = await wait_for(
                lambda: _executor_shares(pool, workflow_id, want=3),
                timeout=30,
                message="succeeded runs on three executors",
            )
            assert len(shares) == 3
            duplicated = await pool.fetch(
                """SELECT scheduled_for FROM workflow_runs WHERE workflow_id = $1
                   GROUP BY scheduled_for HAVING count(*) > 1""",
                workflow_id,
            )
            assert duplicated == []
            async with http.get("/api/runs", params={"workflow_id": str(workflow_id)}) as r:
                assert r.status == 200
                assert len((await r.json())["items"]) >= 3
            # Compose's metrics ports (scheduler:9464, executor:9465) serve every replica.
            assert sorted(metrics_ports) == [
                "executor-1",
                "executor-2",
                "executor-3",
                "scheduler-1",
                "scheduler-2",
            ]
            async with aiohttp.ClientSession() as scraper:
                for process, metrics_port in metrics_ports.items():
                    service = process.split("-")[0]
                    async with scraper.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                        assert r.status == 200, process
                        assert f"flowcron_{service}_" in await r.text(), process
        codes = await asyncio.to_thread(group.stop_all)
        logs = {p.name: p.tail() for p in group.started if codes[p.name] != 0}
        assert all(code == 0 for code in codes.values()), (codes, logs)


def _base_env() -> dict[str, str]:
    return clean_environment({})


async def _wait_ready(http: aiohttp.ClientSession) -> None:
    async def ready() -> bool:
        try:
            async with http.get("/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(ready, timeout=30, message="the API to be ready")


def _healthchecks_pass(services: dict[str, Any], settings: Settings, port: int) -> None:
    """The image's HEALTHCHECK script, against the running processes."""
    script = ROOT / "deploy" / "healthcheck.py"
    for name in ("api", "scheduler", "executor", "migrate"):
        env = {**_base_env(), **service_environment(services[name], settings, port)}
        env["FLOWCRON_API_PORT"] = str(port)
        env["PYTHONPATH"] = str(ROOT)  # in the image, the project is installed
        result = subprocess.run(
            [sys.executable, str(script), name],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"healthy: {name}")


async def _every_second_schedule(http: aiohttp.ClientSession) -> uuid.UUID:
    async with http.post(
        "/api/workflows", json={"name": "compose", "graph": SLOW_GRAPH}
    ) as response:
        assert response.status == 201, await response.text()
        workflow = await response.json()
    body = {"cron": "* * * * * *", "input": {"n": 3}}
    async with http.post(f"/api/workflows/{workflow['id']}/schedule", json=body) as response:
        assert response.status == 201, await response.text()
    return uuid.UUID(workflow["id"])


async def _executor_shares(pool: Pool, workflow_id: uuid.UUID, want: int) -> dict[str, int]:
    rows = await pool.fetch(
        """SELECT executor_id, count(*) AS runs FROM workflow_runs
           WHERE workflow_id = $1 AND status = 'succeeded' GROUP BY executor_id""",
        workflow_id,
    )
    shares = {row["executor_id"]: row["runs"] for row in rows}
    return shares if len(shares) >= want else {}
