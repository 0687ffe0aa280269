"""Schedules: many per workflow, the workflow's default one, and what became of fires.

Fire times are computed on the database's clock (``clock_timestamp()``), the clock the
schedulers use. Edits neither drop nor double a fire: the unique (schedule, fire time)
key makes a repeated fire a no-op, and when the expression or zone changes the next fire
is computed from the older of "now" and a fire that is due but not yet claimed (never
before the last fire that ran), so a due fire is not lost to a concurrent edit.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg
from aiohttp import web

from services.api.inputs import path_id, read_body, read_query
from services.api.jsonio import json_response, project
from services.api.keys import JETSTREAM, POOL, TOPOLOGY, org_id
from services.api.pagination import decode_time_cursor, encode_time_cursor, split_page
from services.api.problems import invalid, not_found
from services.api.queries import Conn
from services.api.queries import schedules as sql
from services.api.schedule_schemas import (
    MAX_BACKFILL,
    BackfillIn,
    BackfillOut,
    DecisionOut,
    DryRunQuery,
    PauseIn,
    PreviewOut,
    PreviewQuery,
    ScheduleCreate,
    ScheduleOut,
    ScheduleUpdate,
    TriggerIn,
)
from services.api.schemas import Page, PageQuery, ScheduleListQuery
from shared.cron import CronError, CronSchedule, describe, parse, zone
from shared.jitter import jitter_delay
from shared.outbox import dispatch, message_from_row

routes = web.RouteTableDef()

FOREVER = datetime(9999, 12, 31, tzinfo=UTC)  # "paused until resumed"
_TICK = timedelta(microseconds=1)


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


def schedule_out(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A schedule (``ScheduleOut``'s fields) with its description, pause state and
    success rate (None until a run has ended)."""
    data = dict(row)
    finished = data["successful_runs"] + data["failed_runs"]
    paused_until = data["paused_until"]
    data["description"] = _describe(data["cron"])
    data["success_rate"] = round(data["successful_runs"] / finished, 4) if finished else None
    data["paused"] = paused_until is not None and paused_until > datetime.now(UTC)
    return project(ScheduleOut, data)


def first_fire(cron: CronSchedule, after: datetime, values: dict[str, Any]) -> datetime | None:
    """The first fire strictly after ``after`` inside [start_at, end_at], or None."""
    start_at, end_at = values.get("start_at"), values.get("end_at")
    if start_at is not None:
        after = max(after, start_at - _TICK)
    fire = cron.next_after(after)
    if fire is None or (end_at is not None and fire > end_at):
        return None
    return fire


def fires_preview(
    cron: CronSchedule, values: dict[str, Any], after: datetime, count: int
) -> list[datetime]:
    """The next ``count`` start instants: fire times plus the schedule's jitter."""
    out: list[datetime] = []
    fire = first_fire(cron, after, values)
    while fire is not None and len(out) < count:
        out.append(fire + jitter_delay(cron.hash_id, fire, values.get("jitter_s", 0)))
        fire = first_fire(cron, fire, values)
    return out


async def _create(
    conn: Conn,
    org: uuid.UUID,
    workflow_id: uuid.UUID,
    body: ScheduleCreate,
    *,
    is_default: bool,
    schedule_id: uuid.UUID | None = None,
) -> uuid.UUID:
    schedule_id = schedule_id or uuid.uuid4()
    cron = compile_cron(body.cron, body.timezone, schedule_id)
    values = {**body.model_dump(), "cron": cron.expression}
    values["next_run_at"] = first_fire(cron, await sql.db_now(conn), values)
    if values["next_run_at"] is None and body.end_at is None:
        raise invalid("cron", "the expression never fires")
    await sql.insert(conn, org, workflow_id, schedule_id, values, is_default=is_default)
    return schedule_id


def _merge(existing: asyncpg.Record, changes: dict[str, Any]) -> dict[str, Any]:
    values = {name: existing[name] for name in sql.WRITABLE}
    values.update(changes)
    if values["start_at"] and values["end_at"] and values["end_at"] <= values["start_at"]:
        raise invalid("end_at", "must be after start_at")
    return values


async def _apply(conn: Conn, existing: asyncpg.Record, changes: dict[str, Any]) -> dict[str, Any]:
    """The schedule's values after ``changes``, with ``next_run_at`` recomputed when
    the timetable moved or the schedule was switched back on."""
    values = _merge(existing, changes)
    cron = compile_cron(values["cron"], values["timezone"], existing["id"])
    values["cron"] = cron.expression
    now = await sql.db_now(conn)
    reenabled = values["enabled"] and not existing["enabled"]
    moved = any(values[k] != existing[k] for k in ("cron", "timezone", "start_at", "end_at"))
    if reenabled:
        values["next_run_at"] = first_fire(cron, now, values)  # no replay of the off time
    elif moved or existing["next_run_at"] is None:
        due = existing["next_run_at"]
        after = due - _TICK if due is not None and due <= now else now
        if existing["last_run_at"] is not None:
            after = max(after, existing["last_run_at"])
        values["next_run_at"] = first_fire(cron, after, values)
    return values


# --- the workflow's default schedule (the seed product's paths) ----------------------


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
    body = await read_body(request, ScheduleCreate)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await sql.lock_workflow(conn, org, workflow_id):
            raise not_found("workflow")
        existing = await sql.lock_default(conn, org, workflow_id)
        if existing is None:
            schedule_id = await _create(conn, org, workflow_id, body, is_default=True)
        else:
            schedule_id = existing["id"]
            values = await _apply(conn, existing, body.model_dump())
            reenabled = values["enabled"] and not existing["enabled"]
            await sql.update(conn, org, schedule_id, values, reset_failures=reenabled)
        row = await sql.read(conn, org, schedule_id)
    assert row is not None  # written in this transaction
    return json_response(schedule_out(row), status=201 if existing is None else 200)


@routes.patch("/api/workflows/{id}/schedule")
async def patch_default(request: web.Request) -> web.Response:
    """Toggle ``enabled`` (and change any other field given)."""
    workflow_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    row = await sql.read_default(pool, org, workflow_id)
    if row is None:
        exists = await sql.workflow_exists(pool, org, workflow_id)
        raise not_found("schedule" if exists else "workflow")
    return await _patch(request, row["id"])


@routes.delete("/api/workflows/{id}/schedule")
async def delete_default(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    pool, org = request.app[POOL], org_id(request)
    if not await sql.delete_default(pool, org, workflow_id):
        exists = await sql.workflow_exists(pool, org, workflow_id)
        raise not_found("schedule" if exists else "workflow")
    return web.Response(status=204)


# --- many schedules per workflow ----------------------------------------------------------


@routes.get("/api/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    query = read_query(request, ScheduleListQuery)
    return await _list(request, query, query.workflow_id)


@routes.get("/api/workflows/{id}/schedules")
async def list_workflow_schedules(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    query = read_query(request, PageQuery)
    if not await sql.workflow_exists(request.app[POOL], org_id(request), workflow_id):
        raise not_found("workflow")
    return await _list(request, query, workflow_id)


async def _list(
    request: web.Request, query: PageQuery, workflow_id: uuid.UUID | None
) -> web.Response:
    rows = await sql.list_page(
        request.app[POOL],
        org_id(request),
        workflow_id=workflow_id,
        enabled=getattr(query, "enabled", None),
        after=decode_time_cursor(query.cursor),
        limit=query.limit + 1,
    )
    page, more = split_page(rows, query.limit)
    cursor = encode_time_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None
    return json_response({"items": [schedule_out(r) for r in page], "next_cursor": cursor})


@routes.post("/api/workflows/{id}/schedules")
async def create_schedule(request: web.Request) -> web.Response:
    workflow_id = path_id(request)
    body = await read_body(request, ScheduleCreate)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await sql.lock_workflow(conn, org, workflow_id):
            raise not_found("workflow")
        schedule_id = await _create(conn, org, workflow_id, body, is_default=False)
        row = await sql.read(conn, org, schedule_id)
    assert row is not None
    response = json_response(schedule_out(row), status=201)
    response.headers["Location"] = f"/api/schedules/{schedule_id}"
    return response


@routes.get("/api/schedules/{id}")
async def get_schedule(request: web.Request) -> web.Response:
    row = await sql.read(request.app[POOL], org_id(request), path_id(request))
    if row is None:
        raise not_found("schedule")
    return json_response(schedule_out(row))


@routes.patch("/api/schedules/{id}")
async def patch_schedule(request: web.Request) -> web.Response:
    """Change fields; ``?dry_run=true`` answers what would change without saving."""
    return await _patch(request, path_id(request))


async def _patch(request: web.Request, schedule_id: uuid.UUID) -> web.Response:
    query = read_query(request, DryRunQuery)
    body = await read_body(request, ScheduleUpdate)
    org = org_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        existing = await sql.lock(conn, org, schedule_id)
        if existing is None:
            raise not_found("schedule")
        values = await _apply(conn, existing, body.changes())
        if query.dry_run:
            cron = compile_cron(values["cron"], values["timezone"], schedule_id)
            after = values["next_run_at"] - _TICK if values["next_run_at"] else FOREVER
            preview = fires_preview(cron, values, after, query.count)
            would_be = schedule_out({**dict(existing), **values})
            return json_response({"dry_run": True, "schedule": would_be, "next_runs": preview})
        reenabled = values["enabled"] and not existing["enabled"]
        await sql.update(conn, org, schedule_id, values, reset_failures=reenabled)
        row = await sql.read(conn, org, schedule_id)
    assert row is not None
    return json_response(schedule_out(row))


@routes.delete("/api/schedules/{id}")
async def delete_schedule(request: web.Request) -> web.Response:
    if not await sql.delete(request.app[POOL], org_id(request), path_id(request)):
        raise not_found("schedule")
    return web.Response(status=204)


# --- pause, preview, history ----------------------------------------------------------------


@routes.post("/api/schedules/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    """Pause until ``until`` (resumes by itself) or until resumed; fires while paused
    are recorded in the history as ``paused`` with the note."""
    body = await read_body(request, PauseIn, optional=True)
    if body.until is not None and body.until.tzinfo is None:
        raise invalid("until", "needs a time zone offset")
    until = body.until.astimezone(UTC) if body.until is not None else FOREVER
    changes = {"paused_until": until, "pause_note": body.note}
    return await _set(request, changes)


@routes.post("/api/schedules/{id}/resume")
async def resume(request: web.Request) -> web.Response:
    return await _set(request, {"paused_until": None, "pause_note": ""}, reset_failures=True)


async def _set(
    request: web.Request, changes: dict[str, Any], *, reset_failures: bool = False
) -> web.Response:
    org, schedule_id = org_id(request), path_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        existing = await sql.lock(conn, org, schedule_id)
        if existing is None:
            raise not_found("schedule")
        values = _merge(existing, changes)
        await sql.update(conn, org, schedule_id, values, reset_failures=reset_failures)
        row = await sql.read(conn, org, schedule_id)
    assert row is not None
    return json_response(schedule_out(row))


@routes.get("/api/schedules/{id}/preview")
async def preview(request: web.Request) -> web.Response:
    """The next fire instants, jitter included (the times runs will really start)."""
    query = read_query(request, PreviewQuery)
    pool = request.app[POOL]
    row = await sql.read(pool, org_id(request), path_id(request))
    if row is None:
        raise not_found("schedule")
    cron = compile_cron(row["cron"], row["timezone"], row["id"])
    after = row["next_run_at"] - _TICK if row["next_run_at"] else await sql.db_now(pool)
    return json_response(PreviewOut(next_runs=fires_preview(cron, dict(row), after, query.count)))


@routes.get("/api/schedules/{id}/history")
async def history(request: web.Request) -> web.Response:
    """Every fire time and what became of it, newest first."""
    query = read_query(request, PageQuery)
    pool, org, schedule_id = request.app[POOL], org_id(request), path_id(request)
    if await sql.read(pool, org, schedule_id) is None:
        raise not_found("schedule")
    rows = await sql.history(
        pool, org, schedule_id, before=_decode_history_cursor(query.cursor), limit=query.limit + 1
    )
    page, more = split_page(rows, query.limit)
    cursor = _history_cursor(page[-1]["fire_time"], page[-1]["key"]) if more else None
    items = [DecisionOut.model_validate(dict(r)) for r in page]
    return json_response(Page[DecisionOut](items=items, next_cursor=cursor))


def _history_cursor(fire_time: datetime, key: str) -> str:
    raw = json.dumps([fire_time.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_history_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        fire, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(fire)
        if parsed.tzinfo is None or not isinstance(key, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    return parsed, key


# --- run now, backfill -------------------------------------------------------------------------


@routes.post("/api/schedules/{id}/trigger")
async def trigger(request: web.Request) -> web.Response:
    """Run the schedule's workflow now, with the schedule's input (or the one given)."""
    body = await read_body(request, TriggerIn, optional=True)
    org, schedule_id = org_id(request), path_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        existing = await sql.lock(conn, org, schedule_id)
        if existing is None:
            raise not_found("schedule")
        run_input = body.input if body.input is not None else existing["input"]
        (run,) = await sql.insert_runs(
            conn,
            org,
            schedule_id,
            trigger="manual",
            run_input=run_input,
            fires=[None],
            releases=[None],
        )
        await sql.record(
            conn,
            org,
            schedule_id,
            decision="triggered",
            reason="run now",
            fires=[await sql.db_now(conn)],
            run_ids=[run["id"]],
        )
    await _publish(request, [run])
    response = json_response({"run_id": run["id"], "status": "queued"}, status=201)
    response.headers["Location"] = f"/api/runs/{run['id']}"
    return response


@routes.post("/api/schedules/{id}/backfill")
async def backfill(request: web.Request) -> web.Response:
    """One run per fire time in [start, end], except fire times that have a run; runs
    are released ``catchup_interval_s`` apart, like a catch-up."""
    body = await read_body(request, BackfillIn)
    org, schedule_id = org_id(request), path_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        existing = await sql.lock(conn, org, schedule_id)
        if existing is None:
            raise not_found("schedule")
        cron = compile_cron(existing["cron"], existing["timezone"], schedule_id)
        fires: list[datetime | None] = []
        for fire in cron.iter_after(body.start - _TICK):
            if fire > body.end:
                break
            if len(fires) >= MAX_BACKFILL:
                raise invalid("end", f"the range holds more than {MAX_BACKFILL} fire times")
            fires.append(fire)
        now = await sql.db_now(conn)
        step = timedelta(seconds=existing["catchup_interval_s"])
        releases: list[datetime | None] = [
            None if i == 0 or not step else now + i * step for i in range(len(fires))
        ]
        runs = await sql.insert_runs(
            conn,
            org,
            schedule_id,
            trigger="backfill",
            run_input=existing["input"],
            fires=fires,
            releases=releases,
        )
        await sql.record(
            conn,
            org,
            schedule_id,
            decision="backfilled",
            reason=f"backfill {body.start} – {body.end}",
            fires=[r["scheduled_for"] for r in runs],
            run_ids=[r["id"] for r in runs],
        )
    # The first at once; the scheduler releases the others at their release_at.
    await _publish(request, [r for r in runs if r["release_at"] is None])
    out = BackfillOut(
        created=len(runs), existing=len(fires) - len(runs), run_ids=[r["id"] for r in runs]
    )
    return json_response(out, status=201 if runs else 200)


async def _publish(request: web.Request, rows: list[asyncpg.Record]) -> None:
    messages = [message_from_row(r) for r in rows]
    await dispatch(request.app[POOL], request.app[JETSTREAM], request.app[TOPOLOGY], messages)
