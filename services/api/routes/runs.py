"""Runs: start one by hand, list, read with steps, read logs.

A manual run is written first and published after the commit (the outbox, see
``shared.outbox``): if publishing fails the row stays ``queued`` without
``published_at`` and the scheduler's outbox sweep publishes it later.
"""

from __future__ import annotations

import asyncpg
import nats.errors
import structlog
from aiohttp import web

from services.api.inputs import path_id, read_body, read_query
from services.api.jsonio import json_response, project
from services.api.keys import JETSTREAM, NATS, POOL, TOPOLOGY, org_id
from services.api.pagination import (
    decode_id_cursor,
    decode_time_cursor,
    encode_id_cursor,
    encode_time_cursor,
    split_page,
)
from services.api.problems import Problem, invalid, not_found
from services.api.queries import runs as sql
from services.api.schemas import (
    LogListQuery,
    LogOut,
    RetryIn,
    RunIn,
    RunListQuery,
    RunOut,
    StepOut,
)
from services.api.triggers import TRIGGERS
from shared.control import request_cancel
from shared.outbox import message_from_row, publish_runs

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255


def _idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise invalid(IDEMPOTENCY_HEADER, f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


@routes.post("/api/workflows/{id}/runs")
async def start_run(request: web.Request) -> web.Response:
    """201 with a new queued run, or 200 with the run an earlier Idempotency-Key made."""
    workflow_id = path_id(request)
    key = _idempotency_key(request)
    body = await read_body(request, RunIn, optional=True)
    pool, org = request.app[POOL], org_id(request)
    if key is None:  # written and published together with concurrent triggers
        run = await request.app[TRIGGERS].trigger(org, workflow_id, body.input)
        if run is None:
            raise not_found("workflow")
        return _created(run)
    row, created = await sql.create_manual(
        pool, org, workflow_id, run_input=body.input, idempotency_key=key
    )
    if row is None:
        raise not_found("workflow")
    if not created:
        if row["input"] != body.input:
            raise invalid(IDEMPOTENCY_HEADER, "already used for this workflow with another input")
        return json_response(project(RunOut, row), status=200)
    return _created(await _publish_and_read(request, row))


async def _publish_and_read(request: web.Request, row: asyncpg.Record) -> asyncpg.Record:
    """Publish a committed run (outbox) and mark it published, returning it as read.
    If the publish fails the row stays unpublished and the outbox sweep sends it."""
    app = request.app
    if await publish_runs(app[JETSTREAM], app[TOPOLOGY], [message_from_row(row)]):
        return await sql.mark_published(app[POOL], org_id(request), row["id"]) or row
    return row


def _created(run: asyncpg.Record) -> web.Response:
    response = json_response(project(RunOut, run), status=201)
    response.headers["Location"] = f"/api/runs/{run['id']}"
    return response


@routes.post("/api/runs/{id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel a queued or running run: 200 with the run, 409 if it had already ended.

    The status change in Postgres is the cancellation (the executor's writes are fenced
    on it); the control message then tells the executor holding the run to stop now
    rather than at its next write. Losing that message only delays the stop.
    """
    run_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    cancelled = await sql.cancel(pool, org, run_id)
    if cancelled:
        try:
            await request_cancel(request.app[NATS], request.app[TOPOLOGY].namespace, run_id)
        except (nats.errors.Error, OSError) as exc:
            log.warning("cancel message not sent", run_id=str(run_id), error=repr(exc))
    row = await sql.get(pool, org, run_id)
    if row is None:
        raise not_found("run")
    if not cancelled:
        raise Problem(409, "run-finished", f"the run has already ended ({row['status']})")
    return json_response(project(RunOut, row))


@routes.post("/api/runs/{id}/retry")
async def retry_run(request: web.Request) -> web.Response:
    """A new run (trigger ``retry``, ``retry_of`` the original) with the same input: 201,
    or 409 if the original is still going. ``{"from_failed": true}`` resumes after the
    steps that succeeded; without it the retry starts over."""
    run_id = path_id(request)
    body = await read_body(request, RetryIn, optional=True)
    pool, org = request.app[POOL], org_id(request)
    row = await sql.create_retry(pool, org, run_id, from_failed=body.from_failed)
    if row is None:
        original = await sql.get(pool, org, run_id)
        if original is None:
            raise not_found("run")
        raise Problem(409, "run-not-finished", f"the run is still {original['status']}")
    return _created(await _publish_and_read(request, row))


@routes.get("/api/runs")
async def list_runs(request: web.Request) -> web.Response:
    query = read_query(request, RunListQuery)
    rows = await sql.list_page(
        request.app[POOL],
        org_id(request),
        workflow_id=query.workflow_id,
        schedule_id=query.schedule_id,
        status=query.status,
        after=decode_time_cursor(query.cursor),
        limit=query.limit + 1,
        created_after=query.created_after,
        created_before=query.created_before,
    )
    page, more = split_page(rows, query.limit)
    cursor = encode_time_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    return json_response({"items": [project(RunOut, r) for r in page], "next_cursor": cursor})


@routes.get("/api/runs/{id}")
async def get_run(request: web.Request) -> web.Response:
    run_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    row = await sql.get(pool, org, run_id)
    if row is None:
        raise not_found("run")
    steps = [project(StepOut, s) for s in await sql.steps(pool, org, run_id)]
    return json_response({**project(RunOut, row), "steps": steps})


@routes.get("/api/runs/{id}/logs")
async def run_logs(request: web.Request) -> web.Response:
    """Log lines oldest first; ``next_cursor`` continues after the last line returned."""
    run_id = path_id(request)
    query = read_query(request, LogListQuery)
    pool, org = request.app[POOL], org_id(request)
    after = decode_id_cursor(query.cursor)
    if await sql.get(pool, org, run_id) is None:
        raise not_found("run")
    rows = await sql.logs(
        pool, org, run_id, after_id=after, node_id=query.node_id, limit=query.limit + 1
    )
    page, more = split_page(rows, query.limit)
    cursor = encode_id_cursor(page[-1]["id"]) if more else None
    return json_response({"items": [project(LogOut, r) for r in page], "next_cursor": cursor})
