"""Prometheus metrics of the API: requests by route and status, latency histogram,
and the system's own gauges.

Each application has its own registry (tests build many apps in one process), holding
``flowcron_api_requests_total{method, route, status}`` and
``flowcron_api_request_duration_seconds{method, route}``, the process collectors, and
:class:`~services.api.system_metrics.SystemMetrics`: runs, schedules and JetStream as
Postgres and NATS have them, refreshed at scrape time behind a short cache. (The
executor's and the scheduler's own counters live in their processes, on their own
metrics ports.) ``route`` is the route's template (``/api/runs/{id}``), never the raw
path, so ids do not multiply the series; unknown paths are ``(none)``.

``/metrics`` is open, like ``/healthz``: keep it off the public network (the gauges
count every organization's runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from services.api.keys import JETSTREAM, POOL, TOPOLOGY
from services.api.system_metrics import SystemMetrics

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    system: SystemMetrics

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        system = SystemMetrics()
        registry.register(system)
        return cls(
            registry,
            Counter(
                "flowcron_api_requests",
                "HTTP requests answered, by route template and status.",
                ["method", "route", "status"],
                registry=registry,
            ),
            Histogram(
                "flowcron_api_request_duration_seconds",
                "Time to answer a request (an event stream: until it ends).",
                ["method", "route"],
                buckets=_BUCKETS,
                registry=registry,
            ),
            system,
        )


METRICS = web.AppKey("metrics", ApiMetrics)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "(none)"
    info = resource.get_info()
    return str(info.get("formatter") or info.get("path") or "(none)")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outside the problem middleware, so errors are counted with the status sent."""
    started = time.perf_counter()
    response: web.StreamResponse = await handler(request)
    metrics, route = request.app[METRICS], _route(request)
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
    return response


routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics, app = request.app[METRICS], request.app
    await metrics.system.refresh(app[POOL], app[JETSTREAM], app[TOPOLOGY])
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
