"""The OpenAPI document: every route in it, served openly, and schemathesis against it."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.openapi import routes_of
from services.api.operations import OPERATIONS
from tests.conftest import Org
from tests.integration.test_api_support import Client, create_workflow

# Event streams stay open until the client leaves: not for a request/response fuzzer.
SKIPPED = {"/api/events", "/api/runs/{id}/events"}
EXAMPLES = 4


async def test_every_route_is_documented(api: Client) -> None:
    app = api.app
    assert app is not None
    missing = [route for route in routes_of(app) if route not in OPERATIONS]
    assert not missing, f"add these routes to services/api/operations.py: {missing}"
    stale = set(OPERATIONS) - set(routes_of(app))
    assert not stale, f"documented but not routed: {stale}"


async def test_document_and_page_are_served_without_a_key(api: Client) -> None:
    resp = await api.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    run = doc["paths"]["/api/runs"]["get"]
    assert {p["name"] for p in run["parameters"]} >= {"status", "created_after", "cursor"}
    assert run["responses"]["default"]["content"]["application/problem+json"]
    body = doc["paths"]["/api/workflows"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/WorkflowIn"}
    page = await api.get("/api/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert "/api/workflows/{id}/runs" in await page.text()


def _fuzz(
    doc: dict[str, Any], base_url: str, headers: dict[str, str]
) -> tuple[list[str], dict[int, int]]:
    """Run schemathesis on every operation; return the failures (one line each) and the
    count of responses by status."""
    schema = schemathesis.openapi.from_dict(doc)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises: test fails
        if operation.path in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call(base_url=base_url, headers=headers, timeout=10)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=checks)

            try:
                run()
            except Unsatisfiable:
                continue  # no invalid request exists (no parameters, no body)
            except Exception as exc:  # noqa: BLE001  # each failure is reported below
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:800]}")
    return failures, statuses


async def test_schemathesis_finds_no_5xx_and_no_mismatch(api: Client, org: Org) -> None:
    workflow = await create_workflow(api, org)
    resp = await api.post(f"/api/workflows/{workflow['id']}/runs", headers=org.headers)
    assert resp.status == 201
    doc = await (await api.get("/api/openapi.json")).json()
    base_url = str(api.make_url("/")).rstrip("/")
    failures, statuses = await asyncio.to_thread(_fuzz, doc, base_url, org.headers)
    assert not failures, "\n".join(failures)
    assert sum(statuses.values()) > 100 and statuses.get(200) and statuses.get(422), statuses
