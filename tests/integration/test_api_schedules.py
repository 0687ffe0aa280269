"""The workflow's default schedule (seed endpoints) and the schedules list."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest_asyncio
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import (
    Client,
    api_client,
    assert_problem,
    create_workflow,
)
from tests.waiting import wait_for


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _schedule(api: Client, org: Org, wid: str, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await api.post(f"/api/workflows/{wid}/schedule", json=body, headers=org.headers)
    return resp.status, await resp.json()


async def test_create_read_toggle_delete(api: Client, org: Org, pool: Pool) -> None:
    wid = (await create_workflow(api, org))["id"]
    path = f"/api/workflows/{wid}/schedule"
    await assert_problem(await api.get(path, headers=org.headers), 404)

    status, created = await _schedule(
        api, org, wid, cron="30 1 * * *", timezone="America/New_York", input={"k": 1}
    )
    assert status == 201
    assert (created["cron"], created["timezone"], created["enabled"]) == (
        "30 1 * * *",
        "America/New_York",
        True,
    )
    assert created["description"] == "At 01:30"
    assert created["workflow_id"] == wid and created["is_default"] is True
    assert created["success_rate"] is None and created["total_runs"] == 0
    now = datetime.now(UTC)
    assert now < _at(created["next_run_at"]) <= now + timedelta(days=1, hours=1)
    assert (await (await api.get(path, headers=org.headers)).json()) == created

    # Disabling keeps next_run_at; enabling again recomputes it from now.
    past = datetime(2020, 1, 1, tzinfo=UTC)
    await pool.execute("UPDATE workflow_schedules SET next_run_at = $1", past)
    resp = await api.patch(path, json={"enabled": False}, headers=org.headers)
    assert resp.status == 200
    off = await resp.json()
    assert off["enabled"] is False and _at(off["next_run_at"]) == past
    on = await (await api.patch(path, json={"enabled": True}, headers=org.headers)).json()
    assert on["enabled"] is True and _at(on["next_run_at"]) > now

    # POST again replaces (200), same schedule id.
    status, replaced = await _schedule(api, org, wid, cron="*/10 * * * * *", enabled=False)
    assert status == 200
    assert replaced["id"] == created["id"]
    assert (replaced["cron"], replaced["timezone"]) == ("*/10 * * * * *", "UTC")
    assert replaced["input"] == {}
    assert replaced["description"] == "Every 10 seconds"

    assert (await api.delete(path, headers=org.headers)).status == 204
    await assert_problem(await api.get(path, headers=org.headers), 404)
    await assert_problem(await api.delete(path, headers=org.headers), 404)


async def test_schedule_changes_wake_the_schedulers(
    api: Client, org: Org, settings: Settings
) -> None:
    wid = (await create_workflow(api, org))["id"]
    await _schedule(api, org, wid, cron="0 * * * *")
    heard: list[str] = []
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.add_listener("flowcron_schedules", lambda *args: heard.append(args[2]))
        resp = await api.patch(
            f"/api/workflows/{wid}/schedule", json={"input": {"a": 1}}, headers=org.headers
        )
        assert resp.status == 200
        await wait_for(lambda: asyncio.sleep(0, result=heard), message="a NOTIFY")
    finally:
        await conn.close()


async def test_invalid_cron_and_timezone_are_located(api: Client, org: Org) -> None:
    wid = (await create_workflow(api, org))["id"]
    path = f"/api/workflows/{wid}/schedule"
    for body, field in [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 * * * *", "enabled": "sometimes"}, "enabled"),
        ({"cron": "0 * * * *", "every": 5}, "every"),
        ({}, "cron"),
    ]:
        resp = await api.post(path, json=body, headers=org.headers)
        problem = await assert_problem(resp, 422)
        assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
    await _schedule(api, org, wid, cron="0 * * * *")
    resp = await api.patch(path, json={"timezone": "Nowhere/Land"}, headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "timezone"
    resp = await api.post(
        f"/api/workflows/{uuid.uuid4()}/schedule", json={"cron": "0 * * * *"}, headers=org.headers
    )
    await assert_problem(resp, 404)


async def test_list_shows_counters_and_success_rate(api: Client, org: Org, pool: Pool) -> None:
    first = await create_workflow(api, org, name="first")
    second = await create_workflow(api, org, name="second")
    third = await create_workflow(api, org, name="third")
    _, s1 = await _schedule(api, org, first["id"], cron="@hourly")
    _, s2 = await _schedule(api, org, second["id"], cron="0 9 * * 1-5", timezone="Europe/Paris")
    _, s3 = await _schedule(api, org, third["id"], cron="H * * * *")
    counters = (
        "UPDATE workflow_schedules SET total_runs = $2, successful_runs = $3, "
        "failed_runs = $4 WHERE id = $1"
    )
    await pool.execute(counters, uuid.UUID(s1["id"]), 5, 3, 1)
    await pool.execute(counters, uuid.UUID(s2["id"]), 2, 0, 2)

    resp = await api.get("/api/schedules", params={"limit": "2"}, headers=org.headers)
    page = await resp.json()
    assert [s["id"] for s in page["items"]] == [s3["id"], s2["id"]]
    rest = await (
        await api.get("/api/schedules", params={"cursor": page["next_cursor"]}, headers=org.headers)
    ).json()
    assert rest["next_cursor"] is None
    by_id = {s["id"]: s for s in [*page["items"], *rest["items"]]}
    one, two, three = by_id[s1["id"]], by_id[s2["id"]], by_id[s3["id"]]
    assert (one["total_runs"], one["successful_runs"], one["failed_runs"]) == (5, 3, 1)
    assert one["success_rate"] == 0.75
    assert one["workflow_name"] == "first" and one["description"] == "Every hour"
    assert two["success_rate"] == 0.0
    assert three["success_rate"] is None
    for item in by_id.values():
        assert {
            "id",
            "workflow_id",
            "workflow_name",
            "name",
            "cron",
            "description",
            "timezone",
            "enabled",
            "input",
            "next_run_at",
            "last_run_at",
            "total_runs",
            "successful_runs",
            "failed_runs",
            "success_rate",
        } <= item.keys()

    filtered = await (
        await api.get("/api/schedules", params={"workflow_id": second["id"]}, headers=org.headers)
    ).json()
    assert [s["id"] for s in filtered["items"]] == [s2["id"]]
    resp = await api.get("/api/schedules", params={"workflow_id": "x"}, headers=org.headers)
    assert (await assert_problem(resp, 422))["errors"][0]["field"] == "workflow_id"
