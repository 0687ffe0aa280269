"""Identical reads in flight share one execution; writes and other callers do not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.coalesce import COALESCER, Coalescer, coalesce_middleware
from services.api.keys import PRINCIPAL, Principal
from services.api.problems import Problem, problem_middleware
from tests.waiting import wait_for

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()


@dataclass
class Backend:
    """A read that waits at a gate and counts how often it ran."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    reads: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)


BACKEND = web.AppKey("backend", Backend)


@web.middleware
async def _as_org(request: web.Request, handler: Any) -> web.StreamResponse:
    org = ORG_B if request.headers.get("X-Org") == "b" else ORG_A
    request[PRINCIPAL] = Principal(uuid.uuid4(), org, "admin")
    response: web.StreamResponse = await handler(request)
    return response


async def _read(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    backend.reads += 1
    n = backend.reads
    backend.entered.set()
    await backend.gate.wait()
    if request.query.get("boom") and n == 1:
        raise RuntimeError("the first read failed")
    if request.query.get("missing"):
        raise Problem(404, "not-found", f"read {n} found nothing")
    return web.json_response({"read": n})


async def _write(_: web.Request) -> web.Response:
    return web.Response(status=204)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problem_middleware, _as_org, coalesce_middleware])
    app[COALESCER] = Coalescer()
    app[BACKEND] = Backend()
    app.router.add_get("/api/thing", _read)
    app.router.add_post("/api/thing", _write)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _backend(client: TestClient[web.Request, web.Application]) -> Backend:
    assert client.app is not None
    return client.app[BACKEND]


async def _get(client: TestClient[web.Request, web.Application], path: str, **headers: str) -> Any:
    resp = await client.get(path, headers=headers)
    return resp.status, await resp.json()


def _joined(client: TestClient[Any, Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return bool(client.app[COALESCER].shared == count)

    return probe


async def _started(backend: Backend, reads: int) -> None:
    while backend.reads < reads:
        backend.entered.clear()
        await asyncio.wait_for(backend.entered.wait(), 5)


async def test_concurrent_identical_reads_share_one(client: TestClient[Any, Any]) -> None:
    backend = _backend(client)
    first = asyncio.ensure_future(_get(client, "/api/thing"))
    await _started(backend, 1)
    followers = [asyncio.ensure_future(_get(client, "/api/thing")) for _ in range(5)]
    await wait_for(_joined(client, 5), timeout=5, interval=0.01, message="5 followers")
    backend.gate.set()
    answers = await asyncio.gather(first, *followers)
    assert answers == [(200, {"read": 1})] * 6
    assert backend.reads == 1 and client.app[COALESCER].shared == 5
    # Nothing is kept once the read is over: the next request reads again.
    assert await _get(client, "/api/thing") == (200, {"read": 2})


async def test_a_read_after_a_write_does_not_join_an_older_read(
    client: TestClient[Any, Any],
) -> None:
    backend = _backend(client)
    older = asyncio.ensure_future(_get(client, "/api/thing"))
    await _started(backend, 1)
    assert (await client.post("/api/thing")).status == 204  # the organization wrote
    newer = asyncio.ensure_future(_get(client, "/api/thing"))
    await _started(backend, 2)
    backend.gate.set()
    assert await older == (200, {"read": 1})
    assert await newer == (200, {"read": 2})
    assert client.app[COALESCER].shared == 0


async def test_other_organizations_and_other_queries_read_for_themselves(
    client: TestClient[Any, Any],
) -> None:
    backend = _backend(client)
    mine = asyncio.ensure_future(_get(client, "/api/thing"))
    await _started(backend, 1)
    theirs = asyncio.ensure_future(_get(client, "/api/thing", **{"X-Org": "b"}))
    other_query = asyncio.ensure_future(_get(client, "/api/thing?limit=5"))
    await _started(backend, 3)
    backend.gate.set()
    results = sorted([await mine, await theirs, await other_query], key=lambda r: r[1]["read"])
    assert [r[1]["read"] for r in results] == [1, 2, 3]
    assert client.app[COALESCER].shared == 0


async def test_a_problem_answer_is_shared_as_a_problem(client: TestClient[Any, Any]) -> None:
    backend = _backend(client)
    first = asyncio.ensure_future(client.get("/api/thing?missing=1"))
    await _started(backend, 1)
    second = asyncio.ensure_future(client.get("/api/thing?missing=1"))
    await wait_for(_joined(client, 1), timeout=5, interval=0.01, message="a follower")
    backend.gate.set()
    for resp in await asyncio.gather(first, second):
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["detail"] == "read 1 found nothing"
    assert backend.reads == 1


async def test_followers_of_a_failed_read_read_for_themselves(
    client: TestClient[Any, Any],
) -> None:
    backend = _backend(client)
    first = asyncio.ensure_future(client.get("/api/thing?boom=1"))
    await _started(backend, 1)
    second = asyncio.ensure_future(_get(client, "/api/thing?boom=1"))
    await wait_for(_joined(client, 1), timeout=5, interval=0.01, message="a follower")
    backend.gate.set()
    assert (await first).status == 500  # an unexpected error is not shared...
    assert await second == (200, {"read": 2})  # ...its followers read again
    assert backend.reads == 2 and client.app[COALESCER].shared == 0
