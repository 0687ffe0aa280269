#!/usr/bin/env python3
"""``flowcron-healthcheck [api|scheduler|executor|migrate]``: the image's HEALTHCHECK.

Exit 0 when healthy, 1 otherwise, with one line saying why (Docker keeps the last
lines of output in ``docker inspect``).

* ``api``: ``GET http://127.0.0.1:$FLOWCRON_API_PORT/healthz`` answers 200.
* ``scheduler``, ``executor``: the Postgres and NATS servers of the settings accept
  TCP connections. These services have no HTTP port; a service that lost a server
  retries on its own, and this check makes the loss visible in ``docker ps``.
* ``migrate``: a one-shot with nothing to check.

Without an argument the service is read from the container's main process (PID 1's
command line: ``flowcron api`` …). Reads the same ``FLOWCRON_`` settings as the services.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from shared.settings import ConfigurationError, Settings, load_settings

SERVICES = ("api", "scheduler", "executor", "migrate")
TIMEOUT_S = 3.0


def service_of_pid1(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """The first service name in PID 1's arguments (also under an init such as tini)."""
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return None
    return next((a.decode() for a in args if a.decode(errors="replace") in SERVICES), None)


def _tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc}"


def check_api(settings: Settings) -> str | None:
    url = f"http://127.0.0.1:{settings.api_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except OSError as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def check_servers(settings: Settings) -> str | None:
    database = urlsplit(settings.database_url)
    problem = _tcp(database.hostname or "127.0.0.1", database.port or 5432)
    if problem:
        return f"postgres {problem}"
    nats_problems = []
    for server in settings.nats_servers:
        parts = urlsplit(server)
        problem = _tcp(parts.hostname or "127.0.0.1", parts.port or 4222)
        if problem is None:
            return None  # one reachable server of the cluster is enough
        nats_problems.append(problem)
    return f"nats {'; '.join(nats_problems)}"


def check(service: str, settings: Settings) -> str | None:
    """Why ``service`` is unhealthy, or None."""
    if service == "api":
        return check_api(settings)
    if service in ("scheduler", "executor"):
        return check_servers(settings)
    return None


def main(argv: list[str]) -> int:
    service = argv[0] if argv else service_of_pid1()
    if service not in SERVICES:
        sys.stdout.write(f"unhealthy: unknown service {service!r} (one of {SERVICES})\n")
        return 1
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        sys.stdout.write(f"unhealthy: {exc}\n")
        return 1
    problem = check(service, settings)
    sys.stdout.write(f"unhealthy: {problem}\n" if problem else f"healthy: {service}\n")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
