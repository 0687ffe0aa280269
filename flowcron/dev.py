"""``flowcron dev``: the whole stack in one command.

Steps: start an embedded Postgres and NATS unless ``FLOWCRON_DATABASE_URL`` /
``FLOWCRON_NATS_URL`` name servers; migrate; create a development API key (written to
``<data dir>/api-key``); start the API, the scheduler and the executor(s) as child
processes; print the address and the key. Ctrl-C (or SIGTERM) stops the services
(SIGTERM, so executors drain), then the embedded servers — everything it started, by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import asyncpg
import structlog

from flowcron.embedded import EmbeddedError, EmbeddedNats, EmbeddedPostgres, port_open
from shared.apikeys import create_key, ensure_organization
from shared.db.migrator import migrate
from shared.db.pool import connect
from shared.logging import configure_logging
from shared.secrets import new_key
from shared.settings import ConfigurationError, Settings, load_settings

log = structlog.get_logger("flowcron.dev")

DEV_DATABASE = "flowcron"
DEV_ORG = "dev"
_STOP_GRACE_S = 30.0


def run_dev(*, executors: int = 1, data_dir: str = ".flowcron") -> int:
    os.environ.setdefault("FLOWCRON_LOG_FORMAT", "console")
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        sys.stderr.write(f"flowcron dev: {exc}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if port_open(settings.api_host, settings.api_port):
        sys.stderr.write(
            f"flowcron dev: port {settings.api_port} is taken; "
            "set FLOWCRON_API_PORT to a free one\n"
        )
        return 2
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    with ExitStack() as servers:
        try:
            if "FLOWCRON_DATABASE_URL" not in os.environ:
                pg = servers.enter_context(EmbeddedPostgres(root / "postgres").start())
                asyncio.run(_ensure_database(pg.url))
                env["FLOWCRON_DATABASE_URL"] = pg.url.rsplit("/", 1)[0] + f"/{DEV_DATABASE}"
            if "FLOWCRON_NATS_URL" not in os.environ:
                nats = servers.enter_context(EmbeddedNats(root / "nats").start())
                env["FLOWCRON_NATS_URL"] = nats.url
        except EmbeddedError as exc:
            sys.stderr.write(f"flowcron dev: {exc}\n")
            return 1
        env.setdefault("FLOWCRON_SECRETS_KEY", _secrets_key(root))
        settings = settings.model_copy(
            update={
                "database_url": env["FLOWCRON_DATABASE_URL"],
                "nats_url": env["FLOWCRON_NATS_URL"],
            }
        )
        key = asyncio.run(_prepare(settings))
        (root / "api-key").write_text(key + "\n")
        (root / "api-key").chmod(0o600)
        return asyncio.run(_supervise(settings, env, executors, key, root))


def _secrets_key(root: Path) -> str:
    """The development stack's secrets key: made once, kept beside its data (0600)."""
    path = root / "secrets-key"
    if not path.exists():
        path.write_text(new_key() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def _ensure_database(maintenance_url: str) -> None:
    conn = await asyncpg.connect(maintenance_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DEV_DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DEV_DATABASE}"')
    finally:
        await conn.close()


async def _prepare(settings: Settings) -> str:
    async with connect(settings.database_url) as conn:
        await migrate(conn)
        org_id = await ensure_organization(conn, DEV_ORG)
        created = await create_key(conn, org_id, name="flowcron dev", role="admin")
    return created.key


async def _supervise(
    settings: Settings, env: dict[str, str], executors: int, key: str, root: Path
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    commands = [("api", 1), ("scheduler", 1), ("executor", executors)]
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    for service, count in commands:
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{service}",
                env=env,
                start_new_session=True,  # Ctrl-C reaches us; we stop the children in order
            )
            children.append((service, proc))
            log.info("service started", service=service, pid=proc.pid)
    exits = [asyncio.ensure_future(proc.wait()) for _, proc in children]
    api = f"http://{settings.api_host}:{settings.api_port}"
    try:
        if await _wait_healthy(api, stop, exits):
            sys.stdout.write(
                "\n  Flowcron is running.\n"
                f"  API:       {api}\n"
                f"  API key:   {key}   (also in {root / 'api-key'})\n"
                f"  Try:       curl -H 'Authorization: Bearer {key}' {api}/api/workflows\n"
                "  Stop:      Ctrl-C\n\n"
            )
            sys.stdout.flush()
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, *exits], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        failed = [name for (name, proc) in children if proc.returncode not in (None, 0)]
        if failed:
            log.error("a service exited; stopping the stack", services=failed)
        return 1 if failed else 0
    finally:
        await _stop_children(children)
        for task in exits:
            task.cancel()


async def _wait_healthy(
    api: str, stop: asyncio.Event, exits: Sequence[asyncio.Future[int]]
) -> bool:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if stop.is_set() or any(e.done() for e in exits):
                return False
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{api}/readyz") as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.1)
    log.warning("the API did not become ready within 30 s")
    return False


async def _stop_children(children: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    # Reverse order: executors drain first, the API goes last.
    for name, proc in reversed(children):
        if proc.returncode is None:
            log.info("stopping service", service=name, pid=proc.pid)
            proc.send_signal(signal.SIGTERM)
    for name, proc in reversed(children):
        try:
            await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
        except TimeoutError:
            log.warning("service did not stop in time; killing it", service=name, pid=proc.pid)
            proc.kill()
            await proc.wait()
