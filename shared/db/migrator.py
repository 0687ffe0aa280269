"""Apply numbered ``.sql`` migrations, once each, safely from several processes.

Files are ``shared/db/migrations/NNNN_name.sql``, applied in order, each in its own
transaction, and recorded in ``flowcron_schema_versions``. An advisory lock makes
concurrent starts (every service migrates on boot in development) wait for each other
instead of racing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from shared.db.pool import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant: the key of the advisory lock held while migrating.
_LOCK_KEY = 0x466C6F77  # "Flow"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations found in ``directory``, in order.

    Raises:
        ValueError: a file name does not follow ``NNNN_name.sql`` or a number repeats.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations numbered {version}")
        found[version] = Migration(version, path.stem, path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the migrations not yet applied; return the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS flowcron_schema_versions (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"] for r in await conn.fetch("SELECT version FROM flowcron_schema_versions")
        }
        applied: list[int] = []
        for migration in load_migrations(directory):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO flowcron_schema_versions (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration applied", version=migration.version, name=migration.name)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
