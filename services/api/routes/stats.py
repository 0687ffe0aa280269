"""``GET /api/stats``: runs by status, success rate, durations, runs per hour.

Over the runs created in the last ``hours`` (default 24), optionally of one workflow or
one schedule. The query is an index-only scan of that window (see
:mod:`services.api.queries.stats`); answers are also kept ``api_stats_cache_s``
seconds per (organization, filters), and concurrent requests for the same key share one
query, so a dashboard polled by many clients costs one query per period.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from services.api.inputs import read_query
from services.api.jsonio import dumps_bytes
from services.api.keys import POOL, SETTINGS, org_id
from services.api.queries import stats as sql
from services.api.schemas import Request, RunStatus

routes = web.RouteTableDef()

STATUSES: tuple[RunStatus, ...] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
)
_ENDED_UNSUCCESSFULLY: tuple[RunStatus, ...] = ("failed", "timed_out")


class StatsQuery(Request):
    hours: int = Field(24, ge=1, le=24 * 31, description="Window: runs created this recently.")
    workflow_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None


class Durations(BaseModel):
    p50: float | None
    p95: float | None


class HourOut(BaseModel):
    hour: datetime
    runs: int


class StatsOut(BaseModel):
    hours: int
    workflow_id: uuid.UUID | None
    schedule_id: uuid.UUID | None
    total: int
    by_status: dict[RunStatus, int]
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + timed_out); null when none ended."
    )
    duration_ms: Durations
    per_hour: list[HourOut] = Field(description="Runs created in each of the last 24 hours.")
    computed_at: datetime


def _shape(query: StatsQuery, raw: dict[str, Any]) -> StatsOut:
    by_status = {status: int(raw["by_status"].get(status, 0)) for status in STATUSES}
    ended = by_status["succeeded"] + sum(by_status[status] for status in _ENDED_UNSUCCESSFULLY)
    p50, p95 = raw["duration_ms"] or (None, None)
    return StatsOut(
        hours=query.hours,
        workflow_id=query.workflow_id,
        schedule_id=query.schedule_id,
        total=sum(by_status.values()),
        by_status=by_status,
        success_rate=round(by_status["succeeded"] / ended, 4) if ended else None,
        duration_ms=Durations(p50=p50, p95=p95),
        per_hour=[HourOut.model_validate(h) for h in raw["per_hour"]],
        computed_at=datetime.now(UTC),
    )


@dataclass
class _Entry:
    expires: float
    answer: asyncio.Future[bytes]  # the encoded answer: a hit costs no encoding
    refresh: asyncio.Future[bytes] | None = None


CACHE = web.AppKey("stats_cache", dict[tuple[Any, ...], _Entry])


async def _compute(request: web.Request, query: StatsQuery) -> bytes:
    raw = await sql.stats(
        request.app[POOL],
        org_id(request),
        hours=query.hours,
        workflow_id=query.workflow_id,
        schedule_id=query.schedule_id,
    )
    return dumps_bytes(_shape(query, raw))


@routes.get("/api/stats")
async def get_stats(request: web.Request) -> web.Response:
    query = read_query(request, StatsQuery)
    ttl = request.app[SETTINGS].api_stats_cache_s
    if ttl <= 0:
        return _json(await _compute(request, query))
    cache = request.app[CACHE]
    key = (org_id(request), query.hours, query.workflow_id, query.schedule_id)
    now = time.monotonic()
    entry = cache.get(key)
    if entry is None or entry.answer.cancelled() or now > entry.expires + ttl:
        if len(cache) > 10_000:
            cache.clear()  # bounded: a cache, not a leak
        entry = _Entry(now + ttl, asyncio.ensure_future(_compute(request, query)))
        cache[key] = entry
    elif now > entry.expires and entry.refresh is None and entry.answer.done():
        # Stale while revalidating: one request starts the new reading, and requests
        # meanwhile are answered from the old one (so an answer is at most two ttl plus
        # one query old); past that they wait for a new reading.
        entry.refresh = asyncio.ensure_future(_compute(request, query))
        entry.refresh.add_done_callback(partial(_refreshed, entry, ttl))
    try:
        answer = await asyncio.shield(entry.answer)
    except BaseException:
        if cache.get(key) is entry:
            del cache[key]  # a failed query is not cached
        raise
    return _json(answer)


def _refreshed(entry: _Entry, ttl: float, future: asyncio.Future[bytes]) -> None:
    entry.refresh = None
    if not future.cancelled() and future.exception() is None:  # else: tried again later
        entry.answer, entry.expires = future, time.monotonic() + ttl


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")
