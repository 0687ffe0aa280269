"""Schedules as a resource: many per workflow, policies, pause, preview, history,
trigger, backfill, dry-run edits, and bad input that writes nothing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from services.scheduler.ticker import Ticker
from shared.db.pool import Pool
from shared.jitter import jitter_delay
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, api_client, assert_problem, create_workflow
from tests.waiting import wait_for


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def make(api: Client, org: Org, workflow_id: str, **body: Any) -> dict[str, Any]:
    resp = await api.post(f"/api/workflows/{workflow_id}/schedules", json=body, headers=org.headers)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_many_schedules_per_workflow_each_with_its_input_and_policies(
    api: Client, org: Org
) -> None:
    wf = await create_workflow(api, org)
    hourly = await make(api, org, wf["id"], cron="0 * * * *", input={"k": 1}, name="hourly")
    nightly = await make(
        api,
        org,
        wf["id"],
        cron="30 2 * * *",
        timezone="Europe/Paris",
        input={"k": 2},
        overlap_policy="skip",
        catchup_policy="all",
        max_catchup_runs=3,
        jitter_s=60,
        auto_pause_after=5,
    )
    assert nightly["overlap_policy"] == "skip"
    assert nightly["jitter_s"] == 60
    assert nightly["is_default"] is False
    resp = await api.get(f"/api/workflows/{wf['id']}/schedules", headers=org.headers)
    items = (await resp.json())["items"]
    assert {i["name"] for i in items} == {"hourly", ""}
    assert {i["input"]["k"] for i in items} == {1, 2}
    resp = await api.get(f"/api/schedules/{hourly['id']}", headers=org.headers)
    one = await resp.json()
    for field in (
        "id",
        "workflow_id",
        "cron",
        "timezone",
        "enabled",
        "next_run_at",
        "last_run_at",
        "total_runs",
        "successful_runs",
        "failed_runs",
        "success_rate",
    ):
        assert field in one
    resp = await api.delete(f"/api/schedules/{hourly['id']}", headers=org.headers)
    assert resp.status == 204
    resp = await api.get(f"/api/schedules/{hourly['id']}", headers=org.headers)
    await assert_problem(resp, 404)


async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api: Client, org: Org, pool: Pool
) -> None:
    wf = await create_workflow(api, org)
    cases = [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"cron": "* * * * *", "overlap_policy": "sometimes"}, "overlap_policy"),
        ({"cron": "* * * * *", "catchup_policy": "most"}, "catchup_policy"),
        (
            {
                "cron": "* * * * *",
                "start_at": "2026-02-01T00:00:00Z",
                "end_at": "2026-01-01T00:00:00Z",
            },
            "end_at",
        ),
        ({"cron": "* * * * *", "jitter_s": -1}, "jitter_s"),
    ]
    for body, field in cases:
        resp = await api.post(
            f"/api/workflows/{wf['id']}/schedules", json=body, headers=org.headers
        )
        problem = await assert_problem(resp, 422)
        assert field in [e["field"] for e in problem["errors"]], (body, problem)
    assert await pool.fetchval("SELECT count(*) FROM workflow_schedules") == 0
    good = await make(api, org, wf["id"], cron="* * * * *")
    resp = await api.get(f"/api/schedules/{good['id']}/preview?count=100000", headers=org.headers)
    problem = await assert_problem(resp, 422)
    assert problem["errors"][0]["field"] == "count"


async def test_preview_shows_jittered_times_and_start_end_bounds(api: Client, org: Org) -> None:
    wf = await create_workflow(api, org)
    sched = await make(
        api,
        org,
        wf["id"],
        cron="0 9 * * *",
        timezone="UTC",
        jitter_s=600,
        start_at="2030-01-01T00:00:00Z",
        end_at="2030-01-03T23:00:00Z",
    )
    assert sched["next_run_at"].startswith("2030-01-01T09:00:00")
    resp = await api.get(f"/api/schedules/{sched['id']}/preview?count=10", headers=org.headers)
    runs = (await resp.json())["next_runs"]
    assert len(runs) == 3  # bounded by end_at
    from datetime import datetime

    first = datetime.fromisoformat(runs[0])
    nominal = datetime.fromisoformat("2030-01-01T09:00:00+00:00")
    assert first == nominal + jitter_delay(sched["id"], nominal, 600)


async def test_patch_dry_run_previews_without_saving(api: Client, org: Org, pool: Pool) -> None:
    wf = await create_workflow(api, org)
    sched = await make(api, org, wf["id"], cron="0 9 * * *", timezone="UTC")
    resp = await api.patch(
        f"/api/schedules/{sched['id']}?dry_run=true&count=3",
        json={"cron": "0 18 * * *", "timezone": "Asia/Tokyo"},
        headers=org.headers,
    )
    preview = await resp.json()
    assert resp.status == 200, preview
    assert preview["dry_run"] is True
    assert all(
        t.endswith("09:00:00Z") or "T09:00:00" in t for t in preview["next_runs"]
    )  # 18:00 JST
    stored = await pool.fetchval("SELECT cron FROM workflow_schedules WHERE id = $1", sched["id"])
    assert stored == "0 9 * * *"
    resp = await api.patch(
        f"/api/schedules/{sched['id']}",
        json={"cron": "0 18 * * *", "timezone": "Asia/Tokyo"},
        headers=org.headers,
    )
    assert (await resp.json())["next_run_at"] == preview["schedule"]["next_run_at"]


async def test_pause_with_a_note_and_resume(api: Client, org: Org) -> None:
    wf = await create_workflow(api, org)
    sched = await make(api, org, wf["id"], cron="* * * * *")
    resp = await api.post(
        f"/api/schedules/{sched['id']}/pause", json={"note": "vendor outage"}, headers=org.headers
    )
    paused = await resp.json()
    assert paused["paused"] is True
    assert paused["pause_note"] == "vendor outage"
    resp = await api.post(f"/api/schedules/{sched['id']}/resume", headers=org.headers)
    resumed = await resp.json()
    assert resumed["paused"] is False
    assert resumed["paused_until"] is None


async def test_trigger_and_backfill_create_runs_and_history(
    api: Client, org: Org, pool: Pool, settings: Settings, js: JetStreamContext
) -> None:
    wf = await create_workflow(api, org)
    sched = await make(
        api, org, wf["id"], cron="0 * * * *", input={"who": "cron"}, catchup_interval_s=0
    )
    resp = await api.post(f"/api/schedules/{sched['id']}/trigger", json={}, headers=org.headers)
    assert resp.status == 201, await resp.text()
    run_id = (await resp.json())["run_id"]
    run = await pool.fetchrow("SELECT * FROM workflow_runs WHERE id = $1", run_id)
    assert run is not None
    assert run["input"] == {"who": "cron"}
    assert run["published_at"] is not None

    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T05:00:00Z"}
    resp = await api.post(
        f"/api/schedules/{sched['id']}/backfill", json=window, headers=org.headers
    )
    first = await resp.json()
    assert (first["created"], first["existing"]) == (6, 0)
    resp = await api.post(
        f"/api/schedules/{sched['id']}/backfill", json=window, headers=org.headers
    )
    again = await resp.json()
    assert (again["created"], again["existing"]) == (0, 6)  # deduplicated
    resp = await api.post(
        f"/api/schedules/{sched['id']}/backfill",
        json={"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=org.headers,
    )
    problem = await assert_problem(resp, 422)
    assert problem["errors"][0]["field"] == "end"

    # A fire the scheduler turns into a run is in the history too, with its run.
    await pool.execute("UPDATE workflow_schedules SET next_run_at = date_trunc('hour', now())")
    await Ticker(settings, pool, js).tick()
    decisions: list[str] = []
    cursor = ""
    while True:  # two items a page: walks the cursor
        resp = await api.get(
            f"/api/schedules/{sched['id']}/history?limit=2{cursor}", headers=org.headers
        )
        page = await resp.json()
        assert resp.status == 200, page
        decisions += [d["decision"] for d in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(decisions) == ["backfilled"] * 6 + ["created", "triggered"]


async def test_an_edit_at_any_moment_neither_drops_nor_doubles_a_fire(
    api: Client, org: Org, pool: Pool, settings: Settings, js: JetStreamContext
) -> None:
    wf = await create_workflow(api, org)
    sched = await make(api, org, wf["id"], cron="* * * * * *")
    ticker = Ticker(settings, pool, js)
    edits = itertools.cycle(
        [
            {"cron": "*/1 * * * * *"},
            {"timezone": "Asia/Tokyo"},
            {"cron": "* * * * * *"},
            {"timezone": "UTC"},
        ]
    )

    async def fired_through_edits() -> list[Any]:
        # Edit between every claim: the timetable is the same, the row keeps changing.
        await ticker.tick()
        resp = await api.patch(
            f"/api/schedules/{sched['id']}", json=next(edits), headers=org.headers
        )
        assert resp.status == 200
        rows = await pool.fetch(
            "SELECT scheduled_for FROM workflow_runs WHERE schedule_id = $1 ORDER BY 1",
            sched["id"],
        )
        return [r["scheduled_for"] for r in rows] if len(rows) >= 4 else []

    times = await wait_for(fired_through_edits, timeout=15, message="four fires")
    assert len(times) == len(set(times))  # none doubled
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    assert gaps == {1.0}, gaps  # none missing


async def test_a_waiting_run_says_why(api: Client, org: Org, pool: Pool) -> None:
    wf = await create_workflow(api, org)
    sched = await make(api, org, wf["id"], cron="* * * * *", overlap_policy="buffer_one")
    held, later = await pool.fetch(
        """INSERT INTO workflow_runs (id, org_id, workflow_id, workflow_version, schedule_id,
                                      trigger, scheduled_for, held, release_at)
           VALUES (gen_random_uuid(), $1, $2, 1, $3, 'schedule', now(), true, NULL),
                  (gen_random_uuid(), $1, $2, 1, $3, 'schedule', now() - interval '1 minute',
                   false, now() + interval '1 hour')
           RETURNING id""",
        org.id,
        wf["id"],
        sched["id"],
    )
    resp = await api.get(f"/api/runs/{held['id']}", headers=org.headers)
    assert "buffer_one" in (await resp.json())["wait_reason"]
    resp = await api.get(f"/api/runs/{later['id']}", headers=org.headers)
    assert (await resp.json())["wait_reason"].startswith("released at ")
