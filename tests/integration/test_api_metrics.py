"""/metrics: requests by route template and status, and a latency histogram."""

from __future__ import annotations

import uuid

from tests.conftest import Org
from tests.integration.test_api_support import Client


async def test_requests_are_counted_by_route_and_status(api: Client, org: Org) -> None:
    await api.get(f"/api/runs/{uuid.uuid4()}", headers=org.headers)
    await api.get("/api/workflows", headers=org.headers)
    await api.get("/no/such/route")
    resp = await api.get("/metrics")  # open, like /healthz
    assert resp.status == 200 and resp.content_type.startswith("text/plain")
    text = await resp.text()
    assert (
        'flowcron_api_requests_total{method="GET",route="/api/runs/{id}",status="404"} 1.0' in text
    )
    assert (
        'flowcron_api_requests_total{method="GET",route="/api/workflows",status="200"} 1.0' in text
    )
    assert 'route="(none)"' in text  # unknown paths share one series
    assert (
        'flowcron_api_request_duration_seconds_bucket{le="0.1",method="GET",route="/api/workflows"}'
        in text
    )
    assert "process_cpu_seconds_total" in text
