"""``/healthz`` (the process answers) and ``/readyz`` (Postgres and NATS answer).

Both are open (no API key), for load balancers and Kubernetes probes.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.api.jsonio import json_response
from services.api.keys import JETSTREAM, NATS, POOL
from services.api.problems import Problem, problem_response

routes = web.RouteTableDef()

CHECK_TIMEOUT_S = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _postgres(app: web.Application) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await app[POOL].fetchval("SELECT 1")
    except (OSError, TimeoutError) as exc:
        return f"unreachable: {exc!r}"
    except Exception as exc:  # noqa: BLE001  # any failure means not ready; it is reported
        return f"error: {exc!r}"
    return "ok"


async def _nats(app: web.Application) -> str:
    if not app[NATS].is_connected:
        return "disconnected"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await app[JETSTREAM].account_info()
    except Exception as exc:  # noqa: BLE001  # any failure means not ready; it is reported
        return f"jetstream error: {exc!r}"
    return "ok"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when both answer; 503 problem naming the one that does not."""
    postgres, nats = await asyncio.gather(_postgres(request.app), _nats(request.app))
    checks = {"postgres": postgres, "nats": nats}
    failed = [name for name, state in checks.items() if state != "ok"]
    if not failed:
        return json_response({"status": "ok", "checks": checks})
    return problem_response(
        Problem(503, "not-ready", f"not ready: {', '.join(failed)}", extra={"checks": checks})
    )
