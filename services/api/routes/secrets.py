"""``/api/secrets``: an organization's secrets, for ``{{ secrets.NAME }}`` in graphs.

Create or replace (``PUT``-like ``POST``), list names, delete. Values are encrypted with
``FLOWCRON_SECRETS_KEY`` (:mod:`shared.secrets`) and never returned. Writes need an
admin key; any key of the organization may list the names.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from services.api.auth import require_admin
from services.api.inputs import read_body
from services.api.jsonio import json_response
from services.api.keys import POOL, SETTINGS, org_id
from services.api.problems import Problem, invalid, not_found
from services.api.schemas import Request
from shared.secrets import (
    MAX_VALUE_CHARS,
    SecretError,
    SecretsKeyError,
    check_name,
    delete_secret,
    list_secret_names,
    put_secret,
)

routes = web.RouteTableDef()

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class SecretIn(Request):
    name: str = Field(pattern=NAME_PATTERN)
    value: str = Field(max_length=MAX_VALUE_CHARS)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretPage(BaseModel):
    items: list[SecretOut]
    next_cursor: str | None = None


@routes.post("/api/secrets")
async def put(request: web.Request) -> web.Response:
    """201 when created, 200 when an existing secret's value was replaced."""
    require_admin(request)
    body = await read_body(request, SecretIn)
    pool, org = request.app[POOL], org_id(request)
    try:
        created = await put_secret(pool, org, body.name, body.value, request.app[SETTINGS])
    except SecretsKeyError as exc:
        raise Problem(503, "secrets-unavailable", str(exc)) from None
    except SecretError as exc:
        raise invalid("value", str(exc)) from None
    rows = {r["name"]: r for r in await list_secret_names(pool, org)}
    out = SecretOut.model_validate(rows[body.name])
    return json_response(out, status=201 if created else 200)


@routes.get("/api/secrets")
async def list_names(request: web.Request) -> web.Response:
    rows = await list_secret_names(request.app[POOL], org_id(request))
    return json_response(SecretPage(items=[SecretOut.model_validate(r) for r in rows]))


@routes.delete("/api/secrets/{name}")
async def delete(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    try:
        check_name(name)
    except SecretError as exc:
        raise invalid("name", str(exc)) from None
    if not await delete_secret(request.app[POOL], org_id(request), name):
        raise not_found("secret")
    return web.Response(status=204)
