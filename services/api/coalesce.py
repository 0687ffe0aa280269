"""Identical reads in flight at the same moment share one execution.

When many clients ask for the same page at once (a dashboard open on many screens, a
poller fleet), the API answers them from one query and one encoding instead of one
each. A ``GET`` under ``/api/`` from an organization and role joins a read of the same
path and query that is already running, if that read started after the last write this
process answered for the organization; otherwise it starts its own. So:

* a client that wrote and then reads, through the same process, sees its write;
* otherwise a shared answer is older than the request by at most the time one read
  takes (milliseconds), as if the request had arrived that much sooner.

Nothing is kept after a read ends: this is not a cache. Event streams are never shared.
``FLOWCRON_API_COALESCE_READS=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from services.api.keys import PRINCIPAL
from services.api.problems import Problem

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_NEVER = ("/api/events", "/api/openapi.json", "/api/docs")

Answer = tuple[int, CIMultiDict[str], bytes]


@dataclass
class _Flight:
    started: float
    answer: asyncio.Future[Answer]


class _UnsharedError(Exception):
    """The leader's answer cannot be shared (a stream, or it was cancelled)."""


@dataclass
class Coalescer:
    enabled: bool = True
    shared: int = 0  # requests answered (or being answered) by another request's read
    _flights: dict[tuple[uuid.UUID, str, str], _Flight] = field(default_factory=dict)
    _last_write: dict[uuid.UUID, float] = field(default_factory=dict)

    def wrote(self, org: uuid.UUID) -> None:
        self._last_write[org] = time.monotonic()

    def joinable(self, key: tuple[uuid.UUID, str, str]) -> _Flight | None:
        """A read of ``key`` in flight that started after the organization's last write."""
        flight = self._flights.get(key)
        if flight is None or flight.started <= self._last_write.get(key[0], 0.0):
            return None
        return flight

    async def lead(
        self, key: tuple[uuid.UUID, str, str], request: web.Request, handler: Any
    ) -> web.StreamResponse:
        """Run the read, sharing its answer with the requests that join it meanwhile."""
        flight = _Flight(time.monotonic(), asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        try:
            response: web.StreamResponse = await handler(request)
        except (web.HTTPException, Problem) as exc:  # problem answers are shared too
            _settle(flight, exc)
            raise
        except BaseException:
            _settle(flight, _UnsharedError())
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            answer = (response.status, CIMultiDict(response.headers), response.body)
            flight.answer.set_result(answer)
        else:
            _settle(flight, _UnsharedError())
        return response


def _settle(flight: _Flight, exc: BaseException) -> None:
    flight.answer.set_exception(exc)
    flight.answer.exception()  # marked retrieved: no follower is required to exist


COALESCER = web.AppKey("coalescer", Coalescer)


def _shareable(request: web.Request) -> bool:
    path = request.path
    return (
        request.method == "GET"
        and path.startswith("/api/")
        and not path.startswith(_NEVER)
        and not path.endswith("/events")
        and PRINCIPAL in request
    )


@web.middleware
async def coalesce_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    coalescer = request.app[COALESCER]
    if not coalescer.enabled or not _shareable(request):
        response: web.StreamResponse = await handler(request)
        if request.method not in _SAFE and PRINCIPAL in request:
            coalescer.wrote(request[PRINCIPAL].org_id)
        return response
    principal = request[PRINCIPAL]
    key = (principal.org_id, principal.role, request.path_qs)
    flight = coalescer.joinable(key)
    if flight is not None:
        coalescer.shared += 1
        try:
            status, headers, body = await asyncio.shield(flight.answer)
        except _UnsharedError:
            coalescer.shared -= 1
        else:
            return web.Response(status=status, headers=headers, body=body)
    return await coalescer.lead(key, request, handler)
