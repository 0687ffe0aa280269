"""The API's JSON: every time it answers is UTC with a ``Z``, whatever offset it was given."""

from __future__ import annotations

import re

from shared.db.pool import Pool
from tests.conftest import Org
from tests.integration.test_api_support import Client, create_workflow

_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_times_given_with_an_offset_come_back_in_utc(api: Client, org: Org) -> None:
    wid = (await create_workflow(api, org))["id"]
    resp = await api.post(
        f"/api/workflows/{wid}/schedules",
        json={
            "cron": "0 9 * * *",
            "timezone": "Asia/Kolkata",
            "start_at": "2030-01-01T05:30:00+05:30",
            "end_at": "2030-06-01T00:00:00-04:00",
        },
        headers=org.headers,
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["start_at"] == "2030-01-01T00:00:00Z"
    assert created["end_at"] == "2030-06-01T04:00:00Z"
    for field in ("next_run_at", "created_at", "updated_at"):
        assert _UTC.match(created[field]), (field, created[field])

    listed = await (await api.get("/api/schedules", headers=org.headers)).json()
    (item,) = [s for s in listed["items"] if s["id"] == created["id"]]
    assert item["start_at"] == "2030-01-01T00:00:00Z" and item == created

    paused = await api.post(
        f"/api/schedules/{created['id']}/pause",
        json={"until": "2030-02-01T12:00:00+01:00"},
        headers=org.headers,
    )
    assert (await paused.json())["paused_until"] == "2030-02-01T11:00:00Z"

    stats = await (await api.get("/api/stats", headers=org.headers)).json()
    assert _UTC.match(stats["computed_at"]), stats["computed_at"]


async def test_integers_beyond_64_bits_are_stored_and_read_exactly(
    api: Client, org: Org, pool: Pool
) -> None:
    wid = (await create_workflow(api, org))["id"]
    run_input = {"id": 123456789012345678901234567890, "low": -9223372036854775809, "n": [2**64]}
    for headers in (org.headers, {**org.headers, "Idempotency-Key": "big-ints"}):
        resp = await api.post(
            f"/api/workflows/{wid}/runs", json={"input": run_input}, headers=headers
        )
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        assert created["input"] == run_input
        assert (
            await pool.fetchval("SELECT input FROM workflow_runs WHERE id = $1", created["id"])
            == run_input
        )
        read = await api.get(f"/api/runs/{created['id']}", headers=org.headers)
        assert (await read.json())["input"] == run_input
    # Written by anything else (numeric in jsonb has no 64-bit limit): read exactly too.
    await pool.execute(
        "UPDATE workflow_runs SET output = '{\"v\": 98765432109876543210987}' WHERE id = $1",
        created["id"],
    )
    read = await api.get(f"/api/runs/{created['id']}", headers=org.headers)
    assert (await read.json())["output"] == {"v": 98765432109876543210987}
