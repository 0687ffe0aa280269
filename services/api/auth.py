"""Bearer API keys: ``Authorization: Bearer fc_…`` → the key's organization.

Keys are looked up by their SHA-256 (``shared.apikeys.hash_key``) among keys not
revoked and kept in the process's :mod:`services.api.keycache`, which drops them the
moment any key is revoked or changed, so a revoked key stops working at once. ``/healthz``,
``/readyz``, ``/metrics`` and the API's description (``/api/openapi.json``,
``/api/docs``) are open, for load balancers, probes, scrapers and readers; so are the
dashboard's page (``/``) and static files (``/dashboard/…``), which hold no data: the
page asks for a key and sends it on its own calls to ``/api/*``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.keycache import KEY_CACHE
from services.api.keys import POOL, PRINCIPAL, Principal
from services.api.problems import Problem
from services.api.routes.dashboard import is_dashboard_path
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
    if request.path in OPEN_PATHS or is_dashboard_path(request.path):
        response: web.StreamResponse = await handler(request)
        return response
    request[PRINCIPAL] = await _principal(request, hash_key(_bearer_token(request)))
    response = await handler(request)
    return response


async def _principal(request: web.Request, key_hash: bytes) -> Principal:
    """The key's principal, from the process's cache or from Postgres."""
    pool, cache = request.app[POOL], request.app[KEY_CACHE]
    principal = cache.get(key_hash)
    if principal is not None:
        if cache.touch_due(key_hash):
            await pool.execute(_TOUCH, principal.key_id)
        return principal
    generation = cache.generation
    row = await pool.fetchrow(_LOOKUP, key_hash)
    if row is None:
        raise _unauthorized("unknown or revoked API key")
    if row["stale"]:
        await pool.execute(_TOUCH, row["id"])
    principal = Principal(row["id"], row["org_id"], row["role"])
    cache.put(key_hash, principal, generation)
    return principal


def require_admin(request: web.Request) -> None:
    """403 unless the caller's key has the ``admin`` role."""
    if request[PRINCIPAL].role != "admin":
        raise Problem(403, "forbidden", "this needs an admin key; yours is a member key")
