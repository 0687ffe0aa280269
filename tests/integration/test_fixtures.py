"""The isolation the other tests rely on: migrated per-test databases and namespaces."""

from __future__ import annotations

from nats.js import JetStreamContext

from shared.db.migrator import load_migrations, migrate
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology, ensure_topology
from tests.conftest import Org


async def test_database_is_migrated_and_migrating_again_is_a_no_op(pool: Pool) -> None:
    versions = [
        r["version"] for r in await pool.fetch("SELECT version FROM flowcron_schema_versions")
    ]
    assert versions == [m.version for m in load_migrations()]
    async with pool.acquire() as conn:
        assert await migrate(conn) == []


async def test_schema_has_every_table_of_the_design(pool: Pool) -> None:
    tables = {
        r["table_name"]
        for r in await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert {
        "organizations",
        "api_keys",
        "workflows",
        "workflow_schedules",
        "workflow_runs",
        "run_steps",
        "run_logs",
    } <= tables


async def test_topology_is_declared_idempotently(js: JetStreamContext, topology: Topology) -> None:
    await ensure_topology(js, topology)  # a second declaration changes nothing
    names = {topology.runs_stream, topology.events_stream, topology.dlq_stream}
    for name in names:
        info = await js.stream_info(name)
        assert info.config.name == name
    consumer = await js.consumer_info(topology.runs_stream, EXECUTORS_CONSUMER)
    assert consumer.config.durable_name == EXECUTORS_CONSUMER
    assert consumer.config.filter_subject == f"{topology.namespace}.runs.>"


async def test_org_fixture_stores_only_a_hash(pool: Pool, org: Org) -> None:
    stored = await pool.fetchrow("SELECT key_hash, prefix FROM api_keys WHERE org_id = $1", org.id)
    assert stored is not None
    assert org.api_key.encode() not in bytes(stored["key_hash"])
    assert org.api_key.startswith(stored["prefix"])


async def test_declaring_keeps_the_operators_stream_settings(
    js: JetStreamContext, topology: Topology
) -> None:
    info = await js.stream_info(topology.runs_stream)
    edited = info.config
    edited.max_msgs = 1_000_000  # as `nats stream edit … --max-msgs` would
    await js.update_stream(edited)
    await ensure_topology(js, topology)  # a service starting again
    after = await js.stream_info(topology.runs_stream)
    assert after.config.max_msgs == 1_000_000
    assert after.config.num_replicas == 1
    events = await js.stream_info(topology.events_stream)
    assert events.config.max_bytes == 256 * 1024 * 1024  # Flowcron's own limit stays
