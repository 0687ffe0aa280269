"""``/api/workflows``: create, list, read, replace, patch, delete, versions."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from services.api.inputs import path_id, read_body, read_query
from services.api.jsonio import json_response
from services.api.keys import POOL, org_id
from services.api.pagination import decode_time_cursor, encode_time_cursor, split_page
from services.api.problems import Problem, not_found
from services.api.queries import workflows as sql
from services.api.schemas import (
    Page,
    WorkflowIn,
    WorkflowListQuery,
    WorkflowOut,
    WorkflowPatch,
)

routes = web.RouteTableDef()


def _out(row: asyncpg.Record) -> WorkflowOut:
    return WorkflowOut.model_validate(dict(row))


@routes.post("/api/workflows")
async def create_workflow(request: web.Request) -> web.Response:
    body = await read_body(request, WorkflowIn)
    row = await sql.create(
        request.app[POOL],
        org_id(request),
        name=body.name,
        description=body.description,
        graph=body.graph.dump(),
        max_concurrency=body.max_concurrency,
    )
    return json_response(_out(row), status=201)


@routes.get("/api/workflows")
async def list_workflows(request: web.Request) -> web.Response:
    query = read_query(request, WorkflowListQuery)
    rows = await sql.list_page(
        request.app[POOL],
        org_id(request),
        q=query.q,
        after=decode_time_cursor(query.cursor),
        limit=query.limit + 1,
    )
    page, more = split_page(rows, query.limit)
    cursor = encode_time_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    return json_response(Page[WorkflowOut](items=[_out(r) for r in page], next_cursor=cursor))


@routes.get("/api/workflows/{id}")
async def get_workflow(request: web.Request) -> web.Response:
    row = await sql.get(request.app[POOL], org_id(request), path_id(request))
    if row is None:
        raise not_found("workflow")
    return json_response(_out(row))


async def _update(request: web.Request, changes: dict[str, Any]) -> web.Response:
    row = await sql.update(request.app[POOL], org_id(request), path_id(request), changes)
    if row is None:
        raise not_found("workflow")
    return json_response(_out(row))


@routes.put("/api/workflows/{id}")
async def replace_workflow(request: web.Request) -> web.Response:
    path_id(request)  # a bad id is reported before the body
    body = await read_body(request, WorkflowIn)
    return await _update(
        request,
        {
            "name": body.name,
            "description": body.description,
            "graph": body.graph.dump(),
            "max_concurrency": body.max_concurrency,
        },
    )


@routes.patch("/api/workflows/{id}")
async def patch_workflow(request: web.Request) -> web.Response:
    path_id(request)
    body = await read_body(request, WorkflowPatch)
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if body.graph is not None:
        changes["graph"] = body.graph.dump()
    return await _update(request, changes)


@routes.delete("/api/workflows/{id}")
async def delete_workflow(request: web.Request) -> web.Response:
    outcome = await sql.delete(request.app[POOL], org_id(request), path_id(request))
    if outcome == "missing":
        raise not_found("workflow")
    if outcome == "busy":
        raise Problem(
            409,
            "workflow-busy",
            "the workflow has running runs; wait for them to finish or cancel them first",
        )
    return web.Response(status=204)


@routes.get("/api/workflows/{id}/versions")
async def list_versions(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    rows = await sql.versions(request.app[POOL], org_id(request), workflow_id)
    if not rows:
        raise not_found("workflow")
    return json_response({"items": [dict(r) for r in rows], "next_cursor": None})
