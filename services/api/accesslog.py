"""One structured line per request: method, path, status, duration_ms."""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("services.api.access")


@web.middleware
async def access_log_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost middleware, so the status logged is the one sent (problems included)."""
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # e.g. a redirect passed through
        status = exc.status
        raise
    finally:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
