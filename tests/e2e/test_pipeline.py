"""The whole pipeline, as a user runs it: three service processes, HTTP only.

API → Postgres → scheduler → JetStream → executor → Postgres → API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from flowcron.embedded import free_port
from shared.settings import Settings
from tests.conftest import Org
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

GRAPH: dict[str, Any] = {
    "name": "every second",
    "nodes": [
        {"id": "start", "type": "trigger"},
        {"id": "ok", "type": "condition", "config": {"expression": "input.n > 0"}},
        {
            "id": "say",
            "type": "action",
            "action": "log_message",
            "config": {"message": "tick {{ run.scheduled_for }} n={{ input.n }}"},
        },
    ],
    "edges": [{"from": "start", "to": "ok"}, {"from": "ok", "to": "say", "branch": "true"}],
}


@pytest.fixture
def services(settings: Settings, js: object, tmp_path: Path) -> Iterator[str]:
    """The API, scheduler and executor as separate processes; the API's base URL."""
    port = free_port()
    env = {
        **os.environ,
        "FLOWCRON_DATABASE_URL": settings.database_url,
        "FLOWCRON_NATS_URL": settings.nats_url,
        "FLOWCRON_NAMESPACE": settings.namespace,
        "FLOWCRON_API_PORT": str(port),
        "FLOWCRON_LOG_FORMAT": "json",
    }
    procs = []
    for service in ("api", "scheduler", "executor"):
        log = (tmp_path / f"{service}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            assert code == 0, f"{proc.args!r} exited with {code}; logs in {tmp_path}"


@pytest_asyncio.fixture(loop_scope="session")
async def http(services: str, org: Org) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=services, headers=org.headers) as session:

        async def ready() -> bool:
            try:
                async with session.get("/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=30, message="the API to be ready")
        yield session


async def test_an_every_second_schedule_runs_through_the_whole_pipeline(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/api/workflows", json={"name": "e2e", "graph": GRAPH}) as response:
        assert response.status == 201, await response.text()
        workflow = await response.json()
    body = {"cron": "* * * * * *", "timezone": "Europe/Paris", "input": {"n": 3}}
    async with http.post(f"/api/workflows/{workflow['id']}/schedule", json=body) as response:
        assert response.status == 201, await response.text()
        schedule = await response.json()
    assert schedule["enabled"] is True

    async def succeeded_runs() -> list[dict[str, Any]]:
        query = {"workflow_id": workflow["id"], "status": "succeeded"}
        async with http.get("/api/runs", params=query) as response:
            assert response.status == 200
            items: list[dict[str, Any]] = (await response.json())["items"]
            return items if len(items) >= 3 else []

    runs = await wait_for(succeeded_runs, timeout=30, message="three succeeded runs")

    fire_times = {run["scheduled_for"] for run in runs}
    assert len(fire_times) == len(runs)  # one run per fire time
    async with http.get(f"/api/runs/{runs[0]['id']}") as response:
        run = await response.json()
    steps = {step["node_id"]: step for step in run["steps"]}
    assert steps["ok"]["status"] == "succeeded"
    assert steps["ok"]["output"] == {"result": True}
    assert steps["say"]["status"] == "succeeded"
    async with http.get(f"/api/runs/{runs[0]['id']}/logs") as response:
        logs = (await response.json())["items"]
    assert any("n=3" in entry["message"] for entry in logs)

    async def counted() -> dict[str, Any]:
        async with http.get("/api/schedules") as response:
            (item,) = (await response.json())["items"]
            return item if item["successful_runs"] >= 3 else {}

    counters = await wait_for(counted, timeout=10, message="the schedule's counters")
    assert counters["total_runs"] >= counters["successful_runs"] >= 3
    assert counters["failed_runs"] == 0
    assert counters["success_rate"] == 1.0
    assert counters["last_run_at"] is not None
    assert counters["next_run_at"] > counters["last_run_at"]
