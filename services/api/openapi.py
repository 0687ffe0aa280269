"""The OpenAPI 3.1 document, built from the pydantic models that validate requests.

Each route has an :class:`Op` in :mod:`services.api.operations` naming its query model,
body model and response models; :func:`build_document` turns the app's router plus that
table into a document, with every model's JSON Schema under ``components/schemas``.
A route with no entry is still listed (with its path parameters and the problem
responses), and ``tests/integration/test_openapi.py`` fails until it gets one.

``GET /api/openapi.json`` serves the document, ``GET /api/docs`` a readable page
rendered from it (no JavaScript, nothing fetched from elsewhere).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.api.jsonio import dumps

JSON = "application/json"
PROBLEM = "application/problem+json"
EVENT_STREAM = "text/event-stream"
_PARAM = re.compile(r"\{(\w+)\}")

Model = type[BaseModel]
Refs = Mapping[tuple[Any, JsonSchemaMode], Any]


@dataclass(frozen=True)
class Op:
    """What one route takes and answers.

    ``responses`` maps a status to its body model (None: no body); every operation also
    documents problem+json as its ``default`` response. ``auth`` is False for the
    open routes, ``admin`` True for those that need an admin key.
    """

    summary: str
    tag: str
    responses: dict[int, Model | None]
    query: Model | None = None
    body: Model | None = None
    body_required: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # name → description
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth: bool = True
    admin: bool = False
    content: Literal["json", "event-stream", "text", "html"] = "json"


UUID_PARAM: dict[str, Any] = {"type": "string", "format": "uuid"}


def _models(operations: dict[tuple[str, str], Op]) -> Iterator[tuple[Model, JsonSchemaMode]]:
    from services.api.operations import ProblemOut

    yield ProblemOut, "serialization"
    for op in operations.values():
        for model in (op.query, op.body):
            if model is not None:
                yield model, "validation"
        for out in op.responses.values():
            if out is not None:
                yield out, "serialization"


def _query_parameters(model: Model, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    ref = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(ref.get("required", []))
    params = []
    for name, prop in ref.get("properties", {}).items():
        schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
        }
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    schemas.update(ref.get("$defs", {}))
    return params


def _path_parameters(path: str, op: Op | None) -> list[dict[str, Any]]:
    overrides = op.path_params if op else {}
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": overrides.get(name, UUID_PARAM if name == "id" else {"type": "string"}),
        }
        for name in _PARAM.findall(path)
    ]


def _problem_response() -> dict[str, Any]:
    return {
        "description": "An error, as RFC 9457 problem details.",
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
    }


def _responses(op: Op | None, refs: Refs) -> dict[str, Any]:
    out: dict[str, Any] = {"default": _problem_response()}
    if op is None:
        out["200"] = {"description": "Undocumented.", "content": {JSON: {"schema": {}}}}
        return out
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Success.")}
        if op.content == "event-stream":
            entry["content"] = {EVENT_STREAM: {"schema": {"type": "string"}}}
        elif op.content == "text":
            entry["content"] = {"text/plain": {"schema": {"type": "string"}}}
        elif op.content == "html":
            entry["content"] = {"text/html": {"schema": {"type": "string"}}}
        elif model is not None:
            entry["content"] = {JSON: {"schema": refs[(model, "serialization")]}}
        out[str(status)] = entry
    return out


_DESCRIPTIONS = {200: "OK.", 201: "Created.", 202: "Accepted.", 204: "No content."}


def _operation(
    method: str,
    path: str,
    op: Op | None,
    refs: Refs,
    schemas: dict[str, Any],
) -> dict[str, Any]:
    params = _path_parameters(path, op)
    if op is not None and op.query is not None:
        params += _query_parameters(op.query, schemas)
    if op is not None:
        params += [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": text,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
            for name, text in op.headers.items()
        ]
    doc: dict[str, Any] = {
        "operationId": f"{method.lower()}_{_slug(path)}",
        "summary": op.summary if op else "Undocumented route",
        "tags": [op.tag if op else "other"],
        "parameters": params,
        "responses": _responses(op, refs),
    }
    if op is not None and op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {JSON: {"schema": refs[(op.body, "validation")]}},
        }
    if op is None or op.auth:
        doc["security"] = [{"bearer": []}]
    else:
        doc["security"] = []
    if op is not None and op.admin:
        doc["description"] = "Admin keys only: a member key gets 403."
    return doc


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app``."""
    from services.api.operations import OPERATIONS

    model_list = list(dict.fromkeys(_models(OPERATIONS)))
    refs, top = models_json_schema(model_list, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes_of(app):
        op = OPERATIONS.get((method, path))
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flowcron API",
            "version": "1",
            "description": "Workflow graphs on cron schedules and on demand. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    """``(METHOD, path template)`` of every route, HEAD excluded (aiohttp adds it)."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if path and route.method not in ("HEAD", "*"):
            found.append((route.method, path))
    return found


DOCUMENT = web.AppKey("openapi_document", dict[str, Any])


async def build_on_startup(app: web.Application) -> None:
    """Build the document once, when the router is complete (an ``on_startup`` hook)."""
    app[DOCUMENT] = build_document(app)


def document(app: web.Application) -> dict[str, Any]:
    return app[DOCUMENT]


routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(text=dumps(document(request.app)), content_type=JSON)


@routes.get("/api/docs")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=render_html(document(request.app)), content_type="text/html")


def render_html(doc: dict[str, Any]) -> str:
    """A plain, self-contained page: each operation with its parameters and responses."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Flowcron API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code,pre{background:#f4f4f4;padding:.1rem .3rem}"
        "h3{margin-bottom:.2rem}.m{font-weight:bold;text-transform:uppercase}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem}"
        "</style></head><body>",
        f"<h1>{esc(doc['info']['title'])}</h1><p>{esc(doc['info']['description'])}</p>",
        "<p>The machine-readable document: <a href='/api/openapi.json'>/api/openapi.json</a>."
        " Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p>",
    ]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            parts.append(
                f"<h3><span class='m'>{esc(method)}</span> <code>{esc(path)}</code></h3>"
                f"<p>{esc(op['summary'])}. {esc(op.get('description', ''))}</p>"
            )
            if op["parameters"]:
                rows = "".join(
                    f"<tr><td><code>{esc(p['name'])}</code></td><td>{esc(p['in'])}</td>"
                    f"<td>{esc(dumps(p['schema']))}</td></tr>"
                    for p in op["parameters"]
                )
                parts.append(
                    f"<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>{rows}</table>"
                )
            if "requestBody" in op:
                ref = op["requestBody"]["content"][JSON]["schema"].get("$ref", "")
                parts.append(
                    f"<p>Body: <a href='#{esc(ref)}'>{esc(ref.rsplit('/', 1)[-1])}</a></p>"
                )
            statuses = ", ".join(s for s in op["responses"] if s != "default")
            parts.append(f"<p>Answers: {esc(statuses)}; errors as problem+json.</p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(
            f"<h3 id='#/components/schemas/{esc(name)}'>{esc(name)}</h3>"
            f"<pre>{esc(dumps(schema))}</pre>"
        )
    parts.append("</body></html>")
    return "".join(parts)
