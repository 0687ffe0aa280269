"""The ``flowcron`` command (DESIGN "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from shared.apikeys import create_key, ensure_organization
from shared.db.migrator import migrate
from shared.db.pool import connect
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import ConfigurationError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowcron", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="the whole stack, on embedded servers when none is set")
    dev.add_argument("--executors", type=int, default=1, help="executor processes (default 1)")
    dev.add_argument("--data-dir", default=".flowcron", help="embedded data (default .flowcron)")
    for name in ("api", "scheduler", "executor"):
        sub.add_parser(name, help=f"run the {name} service")
    sub.add_parser("migrate", help="apply SQL migrations (idempotent)")
    apikey = sub.add_parser("apikey", help="manage API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create an organization if needed and a key")
    create.add_argument("--org", required=True, help="organization name")
    create.add_argument("--role", choices=("admin", "member"), default="admin")
    create.add_argument("--name", default="", help="a label for the key")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dev":
        from flowcron.dev import run_dev

        return run_dev(executors=args.executors, data_dir=args.data_dir)
    if args.command in ("api", "scheduler", "executor"):
        return _run_one(args.command)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        sys.stderr.write(f"flowcron: {exc}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        sys.stdout.write(f"migrations applied: {applied or 'none (up to date)'}\n")
        return 0
    key = asyncio.run(_create_key(settings, args.org, args.role, args.name))
    sys.stdout.write(f"{key}\n")
    return 0


def _run_one(name: str) -> int:
    if name == "api":
        from services.api.app import serve
    elif name == "scheduler":
        from services.scheduler.app import serve
    else:
        from services.executor.app import serve
    return run_service(name, serve)


async def _migrate(settings: Settings) -> list[int]:
    async with connect(settings.database_url) as conn:
        return await migrate(conn)


async def _create_key(settings: Settings, org: str, role: str, name: str) -> str:
    async with connect(settings.database_url) as conn:
        await migrate(conn)
        org_id = await ensure_organization(conn, org)
        created = await create_key(
            conn, org_id, name=name, role="member" if role == "member" else "admin"
        )
    return created.key
