"""The dashboard: a page at ``/`` and its static files under ``/dashboard/``.

No build step: ``services/api/dashboard/`` holds the HTML, CSS and plain ES modules the
browser loads as they are (package data, so a wheel or an image carries them). Both
paths are open (``services.api.auth``): the page holds no data; it asks for an API key
and sends it as ``Authorization: Bearer`` on its own calls to ``/api/*``.

Only files found in that directory are served, by an exact match of their relative
path (no path is ever joined from the request, so ``..`` cannot escape). Answers say
``Cache-Control: no-cache``: the browser revalidates with the ETag, so a new release's
modules are picked up at once. ``/dashboard/timezones.json`` is generated: every IANA
zone this server's tz database knows, which is what the API accepts.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from aiohttp import web

from shared.cron import all_zones

routes = web.RouteTableDef()

ROOT = Path(__file__).resolve().parent.parent / "dashboard"
PREFIX = "/dashboard/"
ZONES_FILE = "timezones.json"
_NOT_ZONES = frozenset({"localtime", "Factory"})  # tz database entries that name no place
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {
    **_HEADERS,
    # Everything the page loads is its own; nothing inline but its style attributes.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}


def is_dashboard_path(path: str) -> bool:
    """True for the paths this module serves (the auth middleware lets them through)."""
    return path == "/" or path.startswith(PREFIX)


@cache
def _files() -> dict[str, Path]:
    """Relative path → file, for every file under :data:`ROOT` (read once)."""
    return {
        path.relative_to(ROOT).as_posix(): path
        for path in sorted(ROOT.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


@cache
def _zones_json() -> str:
    return json.dumps([name for name in all_zones() if name not in _NOT_ZONES])


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """The dashboard's page."""
    return web.FileResponse(_files()["index.html"], headers=_PAGE_HEADERS)


@routes.get("/dashboard/{path:.+}")
async def asset(request: web.Request) -> web.StreamResponse:
    """A static file of the dashboard, or 404."""
    name = request.match_info["path"]
    if name == ZONES_FILE:
        return web.Response(text=_zones_json(), content_type="application/json", headers=_HEADERS)
    path = _files().get(name)
    if path is None:
        raise web.HTTPNotFound()
    content_type = "text/javascript" if path.suffix == ".js" else None
    response = web.FileResponse(path, headers=_HEADERS)
    if content_type is not None:
        # Module scripts need a JavaScript type whatever the host's mimetypes say.
        response.content_type = content_type
    return response
