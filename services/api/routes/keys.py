"""``/api/keys``: create (the key is shown once), list, revoke. Admin keys only.

Postgres keeps a key's SHA-256, never the key; the lookup on every request skips
revoked keys, so a revoked key stops working with the next request.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from services.api.auth import require_admin
from services.api.inputs import path_id, read_body
from services.api.jsonio import json_response
from services.api.keycache import KEY_CACHE
from services.api.keys import POOL, org_id
from services.api.problems import not_found
from services.api.schemas import Request
from shared.apikeys import Role, create_key

routes = web.RouteTableDef()

_COLUMNS = "id, name, prefix, role, created_at, last_used_at, revoked_at"
_LIST = f"SELECT {_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
_GET = f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1 AND org_id = $2"
_REVOKE = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND org_id = $2 RETURNING id
"""


class KeyIn(Request):
    name: str = Field("", max_length=200)
    role: Role = "member"


class KeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, never again.")


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None = None


@routes.post("/api/keys")
async def create(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_body(request, KeyIn, optional=True)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn:
        new = await create_key(conn, org, name=body.name, role=body.role)
        row = await conn.fetchrow(_GET, new.id, org)
    out = KeyCreatedOut.model_validate({**dict(row or {}), "key": new.key})
    response = json_response(out, status=201)
    response.headers["Location"] = f"/api/keys/{new.id}"
    return response


@routes.get("/api/keys")
async def list_keys(request: web.Request) -> web.Response:
    """Every key of the organization, revoked ones included, newest first."""
    require_admin(request)
    rows = await request.app[POOL].fetch(_LIST, org_id(request))
    return json_response(KeyPage(items=[KeyOut.model_validate(dict(r)) for r in rows]))


@routes.delete("/api/keys/{id}")
async def revoke(request: web.Request) -> web.Response:
    """Revoke a key (idempotent): 204; it fails authentication from now on."""
    require_admin(request)
    key_id = path_id(request)
    if await request.app[POOL].fetchval(_REVOKE, key_id, org_id(request)) is None:
        raise not_found("API key")
    # Other processes drop their caches on the trigger's NOTIFY; this one at once, so
    # the caller's next request cannot be served from it.
    request.app[KEY_CACHE].clear()
    return web.Response(status=204)
