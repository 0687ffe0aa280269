"""Shared fixtures: real Postgres and real NATS JetStream, isolated per test.

Each test session migrates one template database; each test that asks for
``database_url`` gets a fresh copy of it (``CREATE DATABASE … TEMPLATE``, a few tens of
milliseconds) and its own ``FLOWCRON_NAMESPACE``, so streams, consumers and rows of one
test are never seen by another, nor by a Flowcron running on the same servers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext

from shared.apikeys import create_key, ensure_organization
from shared.db.migrator import migrate
from shared.db.pool import Pool, open_pool
from shared.logging import configure_logging
from shared.messaging.connection import open_nats
from shared.messaging.topology import Topology, delete_topology, ensure_topology
from shared.settings import Settings
from tests.servers import Servers, test_servers

SESSION = uuid.uuid4().hex[:8]


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("console", "warning")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with test_servers(Path(tmp_path_factory.mktemp("servers"))) as found:
        yield found


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_database(servers: Servers) -> AsyncIterator[str]:
    """A migrated database that per-test databases are copied from."""
    name = f"flowcron_test_{SESSION}_tmpl"
    admin = await asyncpg.connect(servers.postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(_with_database(servers.postgres_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"flowcron_test_{SESSION}_%"
        )
        for row in rows:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"flowcron_test_{SESSION}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers.postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield _with_database(servers.postgres_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def namespace() -> str:
    return f"t{SESSION}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(database_url: str, servers: Servers, namespace: str) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=servers.nats_url,
        namespace=namespace,
        log_format="console",
        log_level="warning",
        executor_ack_wait_s=5,
        scheduler_outbox_grace_s=1,
    )


@pytest.fixture
def topology(settings: Settings) -> Topology:
    return Topology(settings.namespace)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    async with open_pool(settings.database_url, min_size=1, max_size=5) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="session")
async def nats_client(settings: Settings) -> AsyncIterator[Client]:
    async with open_nats(settings.nats_servers, name="tests") as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def js(
    nats_client: Client, settings: Settings, topology: Topology
) -> AsyncIterator[JetStreamContext]:
    """JetStream with this test's namespace declared, and deleted after the test."""
    context = nats_client.jetstream()
    await ensure_topology(
        context,
        topology,
        ack_wait_s=settings.executor_ack_wait_s,
        max_deliver=settings.executor_max_deliver,
    )
    yield context
    await delete_topology(context, topology)


@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest_asyncio.fixture(loop_scope="session")
async def org(pool: Pool) -> Org:
    """An organization with an admin API key."""
    async with pool.acquire() as conn:
        org_id = await ensure_organization(conn, f"org-{uuid.uuid4().hex[:6]}")
        key = await create_key(conn, org_id, name="tests", role="admin")
    return Org(org_id, key.key)
