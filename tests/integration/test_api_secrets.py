"""/api/secrets: values stored encrypted, never returned; names listed; admin writes."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from nats.js import JetStreamContext

from services.api.app import create_app
from services.api.keys import SETTINGS
from shared.db.pool import Pool
from shared.secrets import load_secrets
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem


async def test_secrets_lifecycle(api: Client, org: Org, member: Org, pool: Pool) -> None:
    resp = await api.post(
        "/api/secrets", json={"name": "GH_TOKEN", "value": "ghp_1"}, headers=org.headers
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert set(created) == {"name", "created_at", "updated_at"}
    resp = await api.post(
        "/api/secrets", json={"name": "GH_TOKEN", "value": "ghp_2"}, headers=org.headers
    )
    assert resp.status == 200

    stored = await pool.fetchval("SELECT value FROM secrets WHERE org_id = $1", org.id)
    assert b"ghp_2" not in bytes(stored)
    assert api.app is not None
    settings = api.app[SETTINGS]
    assert await load_secrets(pool, org.id, settings) == {"GH_TOKEN": "ghp_2"}

    listed = await (await api.get("/api/secrets", headers=member.headers)).json()
    assert [s["name"] for s in listed["items"]] == ["GH_TOKEN"]
    assert "ghp" not in str(listed)

    await assert_problem(
        await api.post("/api/secrets", json={"name": "X", "value": "y"}, headers=member.headers),
        403,
    )
    await assert_problem(await api.delete("/api/secrets/GH_TOKEN", headers=member.headers), 403)
    for body, field in (
        ({"name": "1bad", "value": "v"}, "name"),
        ({"name": "OK", "value": 5}, "value"),
        ({"name": "OK"}, "value"),
    ):
        problem = await assert_problem(
            await api.post("/api/secrets", json=body, headers=org.headers), 422
        )
        assert problem["errors"][0]["field"] == field
    await assert_problem(await api.delete("/api/secrets/bad-name", headers=org.headers), 422)

    assert (await api.delete("/api/secrets/GH_TOKEN", headers=org.headers)).status == 204
    await assert_problem(await api.delete("/api/secrets/GH_TOKEN", headers=org.headers), 404)


async def test_without_a_secrets_key_writes_are_503(
    settings: Settings, js: JetStreamContext, org: Org
) -> None:
    async with TestClient(TestServer(create_app(settings))) as client:
        resp = await client.post(
            "/api/secrets", json={"name": "A", "value": "b"}, headers=org.headers
        )
        problem = await assert_problem(resp, 503)
        assert "FLOWCRON_SECRETS_KEY" in problem["detail"]
