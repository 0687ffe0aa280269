"""Helpers shared by the API tests (this module holds no tests itself)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from services.api.app import create_app
from shared.settings import Settings
from tests.conftest import Org

Client = TestClient[web.Request, web.Application]

GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "trigger"},
        {
            "id": "fetch",
            "type": "action",
            "action": "http_request",
            "config": {"method": "GET", "url": "https://example.org"},
        },
        {"id": "ok", "type": "condition", "config": {"expression": "true"}},
        {"id": "log", "type": "action", "action": "log_message", "config": {"message": "hi"}},
    ],
    "edges": [
        {"from": "start", "to": "fetch"},
        {"from": "fetch", "to": "ok"},
        {"from": "ok", "to": "log", "branch": "true"},
    ],
}


def graph() -> dict[str, Any]:
    return copy.deepcopy(GRAPH)


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[Client]:
    """A test client on a real server of ``create_app(settings)``."""
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def create_workflow(api: Client, org: Org, **fields: Any) -> dict[str, Any]:
    body = {"name": "monitor", "graph": GRAPH, **fields}
    resp = await api.post("/api/workflows", json=body, headers=org.headers)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def assert_problem(resp: ClientResponse, status: int) -> dict[str, Any]:
    """Check ``resp`` is a problem+json of ``status``; return its body."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= body.keys()
    return body
