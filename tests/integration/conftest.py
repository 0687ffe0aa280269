"""Fixtures of the API tests: a client on a real server, a second organization, a
member key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from nats.js import JetStreamContext

from shared.apikeys import create_key, ensure_organization
from shared.db.pool import Pool
from shared.secrets import new_key
from shared.settings import Settings
from tests.conftest import Org
from tests.integration.test_api_support import Client, api_client


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings, js: JetStreamContext) -> AsyncIterator[Client]:
    """A test client of the API on a real server (streams of the namespace declared),
    with a secrets key."""
    async with api_client(settings.model_copy(update={"secrets_key": new_key()})) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def other_org(pool: Pool) -> Org:
    """A second organization with an admin key: it must never see the first's objects."""
    async with pool.acquire() as conn:
        org_id = await ensure_organization(conn, f"other-{uuid.uuid4().hex[:6]}")
        key = await create_key(conn, org_id, name="other", role="admin")
    return Org(org_id, key.key)


@pytest_asyncio.fixture(loop_scope="session")
async def member(pool: Pool, org: Org) -> Org:
    """A member (not admin) key of ``org``."""
    async with pool.acquire() as conn:
        key = await create_key(conn, org.id, name="member", role="member")
    return Org(org.id, key.key)
