"""``POST /api/utils/validate-cron``: check an expression and preview its fire times.

An expression or time zone that does not parse is a 200 with ``valid: false`` and the
reason (validating is the point of the call); a body that does not fit the schema
(unknown field, ``count`` out of 1…MAX_PREVIEW) is a 422.
"""

from __future__ import annotations

from datetime import UTC

from aiohttp import web

from services.api.inputs import read_body
from services.api.jsonio import json_response
from services.api.keys import POOL
from services.api.queries.schedules import db_now
from services.api.schemas import ValidateCronIn, ValidateCronOut
from shared.cron import CronError, describe, parse

routes = web.RouteTableDef()

# H fields need a seed; a schedule hashes its own id, a bare preview uses this one.
PREVIEW_HASH_ID = "preview"


@routes.post("/api/utils/validate-cron")
async def validate_cron(request: web.Request) -> web.Response:
    body = await read_body(request, ValidateCronIn)
    hash_id = str(body.schedule_id) if body.schedule_id else PREVIEW_HASH_ID
    try:
        cron = parse(body.expression, body.timezone, hash_id=hash_id)
    except CronError as exc:
        out = ValidateCronOut(valid=False, description=None, next_runs=[], error=str(exc))
        return json_response(out)
    if body.start is None:
        async with request.app[POOL].acquire() as conn:
            start = await db_now(conn)
    elif body.start.tzinfo is None:
        start = body.start.replace(tzinfo=UTC)
    else:
        start = body.start.astimezone(UTC)
    fires = cron.next_n(start, body.count)
    out = ValidateCronOut(
        valid=True, description=describe(body.expression), next_runs=fires, error=None
    )
    return json_response(out)
