"""Run and step lifecycle events on ``<ns>.events.<run_id>.<kind>`` (best effort).

Kinds: ``run.started``, ``step.started``, ``step.finished``, ``run.finished``.
Body: ``{"run_id", "org_id", "workflow_id", "node_id"?, "status", "at"}`` (``at`` is
ISO 8601 UTC), plus ``error`` when there is one. Events feed live views; Postgres is
the record, so events are published on core NATS (the ``<NS>_EVENTS`` stream stores
them; no publish acknowledgement is awaited) and a publish that fails is logged and
never fails the run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.aio.client import Client

from services.executor.store import ClaimedRun
from shared.messaging.topology import Topology

log = structlog.get_logger(__name__)


class Events:
    def __init__(self, nc: Client, topology: Topology) -> None:
        self._nc = nc
        self._topology = topology

    async def publish(
        self,
        run: ClaimedRun,
        kind: str,
        status: str,
        *,
        node_id: str | None = None,
        error: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "run_id": str(run.id),
            "org_id": str(run.org_id),
            "workflow_id": str(run.workflow_id),
            "status": status,
            "at": datetime.now(UTC).isoformat(),
        }
        if node_id is not None:
            body["node_id"] = node_id
        if error is not None:
            body["error"] = error
        try:
            await self._nc.publish(
                self._topology.event_subject(run.id, kind), json.dumps(body).encode()
            )
        except Exception as exc:  # noqa: BLE001  # best effort by contract (module docstring)
            log.warning("event not published", kind=kind, error=repr(exc))
