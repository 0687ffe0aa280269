"""Which Postgres and NATS the tests use: the machine's, or embedded ones.

``FLOWCRON_TEST_DATABASE_URL`` / ``FLOWCRON_TEST_NATS_URL`` name servers explicitly.
Otherwise a server answering on the default port (127.0.0.1:5432, 127.0.0.1:4222) is
used, and failing that an embedded one is started for the session.
``FLOWCRON_TEST_EMBEDDED=1`` skips the probes: the embedded servers are used even when
the machine has its own (how a bare machine is checked on one that is not bare).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from flowcron.embedded import EmbeddedNats, EmbeddedPostgres, port_open


@dataclass(frozen=True)
class Servers:
    postgres_url: str  # a database the tests may CREATE DATABASE from (maintenance db)
    nats_url: str


@contextmanager
def test_servers(workdir: Path) -> Iterator[Servers]:
    forced = os.environ.get("FLOWCRON_TEST_EMBEDDED") == "1"
    with ExitStack() as stack:
        pg_url = os.environ.get("FLOWCRON_TEST_DATABASE_URL")
        if not pg_url:
            if not forced and port_open("127.0.0.1", 5432):
                pg_url = "postgresql://postgres@127.0.0.1:5432/postgres"
            else:
                pg = stack.enter_context(EmbeddedPostgres(workdir / "pg").start())
                pg_url = pg.url
        nats_url = os.environ.get("FLOWCRON_TEST_NATS_URL")
        if not nats_url:
            if not forced and port_open("127.0.0.1", 4222):
                nats_url = "nats://127.0.0.1:4222"
            else:
                nats = stack.enter_context(EmbeddedNats(workdir / "nats").start())
                nats_url = nats.url
        yield Servers(pg_url, nats_url)
