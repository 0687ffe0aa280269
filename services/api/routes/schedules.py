"""The workflow's default schedule (``/api/workflows/{id}/schedule``) and ``/api/schedules``.

Fire times are computed on the database's clock (``clock_timestamp()``), the clock
the schedulers use. ``next_run_at`` is recomputed from now when the cron expression or
time zone changes, or when a disabled schedule is enabled again (so fires missed while
it was off are not replayed); disabling keeps it, since schedulers only claim enabled
rows.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

import asyncpg
from aiohttp import web

from services.api.inputs import path_id, read_body, read_query
from services.api.jsonio import json_response
from services.api.keys import POOL, org_id
from services.api.pagination import decode_time_cursor, encode_time_cursor, split_page
from services.api.problems import invalid, not_found
from services.api.queries import Conn
from services.api.queries import schedules as sql
from services.api.schemas import Page, ScheduleIn, ScheduleListQuery, ScheduleOut, SchedulePatch
from shared.cron import CronError, CronSchedule, describe, parse, zone

routes = web.RouteTableDef()


def compile_cron(expression: str, timezone: str, schedule_id: uuid.UUID) -> CronSchedule:
    """Parse, or a 422 naming ``timezone`` or ``cron``; H fields hash the schedule id."""
    try:
        zone(timezone)
    except CronError as exc:
        raise invalid("timezone", str(exc)) from None
    try:
        return parse(expression, timezone, hash_id=str(schedule_id))
    except CronError as exc:
        raise invalid("cron", str(exc)) from None


@lru_cache(maxsize=1024)
def _describe(expression: str) -> str:
    return describe(expression)


def schedule_out(row: asyncpg.Record) -> ScheduleOut:
    """A schedule row with its description and success rate (None until a run ends)."""
    finished = row["successful_runs"] + row["failed_runs"]
    rate = round(row["successful_runs"] / finished, 4) if finished else None
    return ScheduleOut.model_validate(
        {**dict(row), "description": _describe(row["cron"]), "success_rate": rate}
    )


async def _next_fire(conn: Conn, cron: CronSchedule) -> Any:
    fire = cron.next_after(await sql.db_now(conn))
    if fire is None:
        raise invalid("cron", "the expression never fires")
    return fire


@routes.get("/api/workflows/{id}/schedule")
async def get_default(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    row = await sql.read_default(pool, org, workflow_id)
    if row is None:
        exists = await sql.workflow_exists(pool, org, workflow_id)
        raise not_found("schedule" if exists else "workflow")
    return json_response(schedule_out(row))


@routes.post("/api/workflows/{id}/schedule")
async def put_default(request: web.Request) -> web.Response:
    """Create the default schedule (201), or replace its fields (200)."""
    workflow_id = path_id(request)
    body = await read_body(request, ScheduleIn)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await sql.lock_workflow(conn, org, workflow_id):
            raise not_found("workflow")
        existing = await sql.lock_default(conn, org, workflow_id)
        schedule_id = existing["id"] if existing else uuid.uuid4()
        cron = compile_cron(body.cron, body.timezone, schedule_id)
        values = {
            "cron": cron.expression,
            "timezone": body.timezone,
            "enabled": body.enabled,
            "input": body.input,
            "next_run_at": await _next_fire(conn, cron),
        }
        if existing is None:
            await sql.insert_default(conn, org, workflow_id, schedule_id, values)
        else:
            reenabled = body.enabled and not existing["enabled"]
            await sql.update(conn, org, schedule_id, values, reset_failures=reenabled)
        row = await sql.read(conn, org, schedule_id)
    assert row is not None  # written in this transaction
    return json_response(schedule_out(row), status=201 if existing is None else 200)


@routes.patch("/api/workflows/{id}/schedule")
async def patch_default(request: web.Request) -> web.Response:
    """Toggle ``enabled`` (and change cron, timezone or input if given)."""
    workflow_id = path_id(request)
    body = await read_body(request, SchedulePatch)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await sql.lock_workflow(conn, org, workflow_id):
            raise not_found("workflow")
        existing = await sql.lock_default(conn, org, workflow_id)
        if existing is None:
            raise not_found("schedule")
        values: dict[str, Any] = {
            key: getattr(body, key) if key in body.model_fields_set else existing[key]
            for key in ("cron", "timezone", "enabled", "input")
        }
        cron = compile_cron(values["cron"], values["timezone"], existing["id"])
        values["cron"] = cron.expression
        reenabled = values["enabled"] and not existing["enabled"]
        moved = (values["cron"], values["timezone"]) != (existing["cron"], existing["timezone"])
        if moved or reenabled or existing["next_run_at"] is None:
            values["next_run_at"] = await _next_fire(conn, cron)
        else:
            values["next_run_at"] = existing["next_run_at"]
        await sql.update(conn, org, existing["id"], values, reset_failures=reenabled)
        row = await sql.read(conn, org, existing["id"])
    assert row is not None
    return json_response(schedule_out(row))


@routes.delete("/api/workflows/{id}/schedule")
async def delete_default(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    if not await sql.delete_default(pool, org, workflow_id):
        exists = await sql.workflow_exists(pool, org, workflow_id)
        raise not_found("schedule" if exists else "workflow")
    return web.Response(status=204)


@routes.get("/api/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    query = read_query(request, ScheduleListQuery)
    rows = await sql.list_page(
        request.app[POOL],
        org_id(request),
        workflow_id=query.workflow_id,
        enabled=query.enabled,
        after=decode_time_cursor(query.cursor),
        limit=query.limit + 1,
    )
    page, more = split_page(rows, query.limit)
    cursor = encode_time_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    items = [schedule_out(r) for r in page]
    return json_response(Page[ScheduleOut](items=items, next_cursor=cursor))
