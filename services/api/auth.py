"""Bearer API keys: ``Authorization: Bearer fc_…`` → the key's organization.

Keys are looked up by their SHA-256 (``shared.apikeys.hash_key``) among keys not
revoked, on every request, so a revoked key stops working at once. ``/healthz``,
``/readyz``, ``/metrics`` and the API's description (``/api/openapi.json``,
``/api/docs``) are open, for load balancers, probes, scrapers and readers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.keys import POOL, PRINCIPAL, Principal
from services.api.problems import Problem
from shared.apikeys import hash_key

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/openapi.json", "/api/docs"})

_LOOKUP = """
SELECT id, org_id, role,
       last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale
FROM api_keys
WHERE key_hash = $1 AND revoked_at IS NULL
"""
# last_used_at is refreshed at most once a minute, so reads do not write on every call.
_TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="flowcron"'}
    )


def _bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Resolve the caller's key to a :class:`Principal`, or answer 401."""
    if request.path in OPEN_PATHS:
        response: web.StreamResponse = await handler(request)
        return response
    token = _bearer_token(request)
    pool = request.app[POOL]
    row = await pool.fetchrow(_LOOKUP, hash_key(token))
    if row is None:
        raise _unauthorized("unknown or revoked API key")
    if row["stale"]:
        await pool.execute(_TOUCH, row["id"])
    request[PRINCIPAL] = Principal(row["id"], row["org_id"], row["role"])
    response = await handler(request)
    return response


def require_admin(request: web.Request) -> None:
    """403 unless the caller's key has the ``admin`` role."""
    if request[PRINCIPAL].role != "admin":
        raise Problem(403, "forbidden", "this needs an admin key; yours is a member key")
