"""``POST /api/utils/validate-cron``: descriptions, previews, invalid expressions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from shared.cron import MAX_PREVIEW
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, api_client, assert_problem

PATH = "/api/utils/validate-cron"


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    async with api_client(settings) as client:
        yield client


async def _validate(api: Client, org: Org, **body: Any) -> dict[str, Any]:
    resp = await api.post(PATH, json=body, headers=org.headers)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def _instants(values: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(v) for v in values]


async def test_five_fields_across_a_dst_change(api: Client, org: Org) -> None:
    out = await _validate(
        api,
        org,
        expression="30 1 * * *",
        timezone="America/New_York",
        count=2,
        start="2026-10-31T12:00:00Z",
    )
    assert out["valid"] is True and out["error"] is None
    assert out["description"] == "At 01:30"
    assert _instants(out["next_runs"]) == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, once on the fall-back night
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
    ]
    assert all(v.endswith("Z") for v in out["next_runs"])


async def test_six_fields_have_seconds_first(api: Client, org: Org) -> None:
    out = await _validate(
        api, org, expression="*/15 * * * * *", start="2026-01-01T00:00:00Z", count=3
    )
    assert out["description"] == "Every 15 seconds"
    assert out["next_runs"] == [
        "2026-01-01T00:00:15Z",
        "2026-01-01T00:00:30Z",
        "2026-01-01T00:00:45Z",
    ]


async def test_defaults_preview_five_from_now(api: Client, org: Org) -> None:
    before = datetime.now(UTC)
    out = await _validate(api, org, expression="@hourly")
    runs = _instants(out["next_runs"])
    assert len(runs) == 5 and before < runs[0] and runs == sorted(runs)
    hashed = await _validate(api, org, expression="H H * * *", start="2026-01-01T00:00:00")
    assert hashed["valid"] is True and len(hashed["next_runs"]) == 5


async def test_invalid_expression_is_a_200_with_the_reason(api: Client, org: Org) -> None:
    out = await _validate(api, org, expression="61 * * * *")
    assert (out["valid"], out["description"], out["next_runs"]) == (False, None, [])
    assert out["error"]
    out = await _validate(api, org, expression="0 * * * *", timezone="Mars/Olympus")
    assert out["valid"] is False and "time zone" in out["error"]


async def test_bad_bodies_are_422(api: Client, org: Org) -> None:
    for body, field in [
        ({"expression": "* * * * *", "count": MAX_PREVIEW + 1}, "count"),
        ({"expression": "* * * * *", "count": 0}, "count"),
        ({"expression": "* * * * *", "start": "yesterday"}, "start"),
        ({"expression": "@hourly", "start": "9999-12-31T23:00:00Z"}, "start"),
        ({"expression": "* * * * *", "extra": True}, "extra"),
        ({}, "expression"),
    ]:
        problem = await assert_problem(await api.post(PATH, json=body, headers=org.headers), 422)
        assert [e["field"] for e in problem["errors"]] == [field]
