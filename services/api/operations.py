"""What every route takes and answers, for the OpenAPI document.

The models named here are the ones the handlers validate with (``read_body``,
``read_query``) and answer with, so the document cannot drift from the validation.
A new route needs an entry: ``tests/integration/test_openapi.py`` fails until it has one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, RootModel

from services.api import schedule_schemas as sch
from services.api.openapi import Op
from services.api.routes import keys, queues, secrets, stats
from services.api.schemas import (
    LogListQuery,
    LogOut,
    Page,
    PageQuery,
    RetryIn,
    RunDetailOut,
    RunIn,
    RunListQuery,
    RunOut,
    ScheduleListQuery,
    ValidateCronIn,
    ValidateCronOut,
    VersionOut,
    WorkflowIn,
    WorkflowListQuery,
    WorkflowOut,
    WorkflowPatch,
)


class ProblemError(BaseModel):
    field: str
    message: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details; some problems add members (``checks`` …)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemError]


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] | None = None


class TriggerOut(BaseModel):
    run_id: uuid.UUID
    status: str


class DryRunOut(BaseModel):
    dry_run: bool
    schedule: dict[str, Any]
    next_runs: list[datetime]


class SchedulePatchOut(RootModel[sch.ScheduleOut | DryRunOut]):
    """The schedule changed, or with ``dry_run=true`` what it would become."""


class VersionPage(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None = None


_IDEMPOTENCY = {
    "Idempotency-Key": "Repeat a request safely: the same key returns the same run (200)."
}
_QUEUE_NAME = {"name": {"type": "string", "enum": ["runs", "events", "dlq"]}}

W, S, R = "workflows", "schedules", "runs"

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/healthz"): Op("The process answers", "health", {200: HealthOut}, auth=False),
    ("GET", "/readyz"): Op(
        "Postgres and NATS answer", "health", {200: HealthOut, 503: None}, auth=False
    ),
    ("GET", "/metrics"): Op(
        "Prometheus metrics", "health", {200: None}, auth=False, content="text"
    ),
    ("GET", "/api/openapi.json"): Op("This document", "meta", {200: None}, auth=False),
    ("GET", "/api/docs"): Op(
        "This document as a page", "meta", {200: None}, auth=False, content="html"
    ),
    # --- the dashboard: a page and its static files, not JSON (services/api/routes/dashboard.py)
    ("GET", "/"): Op("The dashboard", "dashboard", {200: None}, auth=False, content="html"),
    ("GET", "/dashboard/{path}"): Op(
        "A static file of the dashboard (JavaScript, CSS, SVG, the zone list)",
        "dashboard",
        {200: None},  # of the file's own type
        path_params={"path": {"type": "string", "minLength": 1}},
        auth=False,
    ),
    # --- workflows
    ("POST", "/api/workflows"): Op("Create a workflow", W, {201: WorkflowOut}, body=WorkflowIn),
    ("GET", "/api/workflows"): Op(
        "List workflows", W, {200: Page[WorkflowOut]}, query=WorkflowListQuery
    ),
    ("GET", "/api/workflows/{id}"): Op("Read a workflow", W, {200: WorkflowOut}),
    ("PUT", "/api/workflows/{id}"): Op(
        "Replace a workflow", W, {200: WorkflowOut}, body=WorkflowIn
    ),
    ("PATCH", "/api/workflows/{id}"): Op(
        "Change some fields of a workflow", W, {200: WorkflowOut}, body=WorkflowPatch
    ),
    ("DELETE", "/api/workflows/{id}"): Op("Delete a workflow", W, {204: None}),
    ("GET", "/api/workflows/{id}/versions"): Op(
        "Every version of a workflow's graph", W, {200: VersionPage}
    ),
    # --- schedules
    ("GET", "/api/workflows/{id}/schedule"): Op(
        "Read the workflow's default schedule", S, {200: sch.ScheduleOut}
    ),
    ("POST", "/api/workflows/{id}/schedule"): Op(
        "Create or replace the default schedule",
        S,
        {200: sch.ScheduleOut, 201: sch.ScheduleOut},
        body=sch.ScheduleCreate,
    ),
    ("PATCH", "/api/workflows/{id}/schedule"): Op(
        "Change the default schedule", S, {200: sch.ScheduleOut}, body=sch.ScheduleUpdate
    ),
    ("DELETE", "/api/workflows/{id}/schedule"): Op("Delete the default schedule", S, {204: None}),
    ("GET", "/api/schedules"): Op(
        "List schedules", S, {200: Page[sch.ScheduleOut]}, query=ScheduleListQuery
    ),
    ("GET", "/api/workflows/{id}/schedules"): Op(
        "List a workflow's schedules", S, {200: Page[sch.ScheduleOut]}, query=PageQuery
    ),
    ("POST", "/api/workflows/{id}/schedules"): Op(
        "Add a schedule to a workflow", S, {201: sch.ScheduleOut}, body=sch.ScheduleCreate
    ),
    ("GET", "/api/schedules/{id}"): Op("Read a schedule", S, {200: sch.ScheduleOut}),
    ("PATCH", "/api/schedules/{id}"): Op(
        "Change a schedule (dry_run previews)",
        S,
        {200: SchedulePatchOut},
        query=sch.DryRunQuery,
        body=sch.ScheduleUpdate,
    ),
    ("DELETE", "/api/schedules/{id}"): Op("Delete a schedule", S, {204: None}),
    ("POST", "/api/schedules/{id}/pause"): Op(
        "Pause a schedule", S, {200: sch.ScheduleOut}, body=sch.PauseIn, body_required=False
    ),
    ("POST", "/api/schedules/{id}/resume"): Op("Resume a schedule", S, {200: sch.ScheduleOut}),
    ("GET", "/api/schedules/{id}/preview"): Op(
        "Next fire times", S, {200: sch.PreviewOut}, query=sch.PreviewQuery
    ),
    ("GET", "/api/schedules/{id}/history"): Op(
        "What became of each fire time", S, {200: Page[sch.DecisionOut]}, query=PageQuery
    ),
    ("POST", "/api/schedules/{id}/trigger"): Op(
        "Run the schedule now", S, {201: TriggerOut}, body=sch.TriggerIn, body_required=False
    ),
    ("POST", "/api/schedules/{id}/backfill"): Op(
        "Create runs for past fire times",
        S,
        {200: sch.BackfillOut, 201: sch.BackfillOut},
        body=sch.BackfillIn,
    ),
    ("POST", "/api/utils/validate-cron"): Op(
        "Check a cron expression and preview it", S, {200: ValidateCronOut}, body=ValidateCronIn
    ),
    # --- runs
    ("POST", "/api/workflows/{id}/runs"): Op(
        "Start a run",
        R,
        {200: RunOut, 201: RunOut},
        body=RunIn,
        body_required=False,
        headers=_IDEMPOTENCY,
    ),
    ("GET", "/api/runs"): Op("List runs", R, {200: Page[RunOut]}, query=RunListQuery),
    ("GET", "/api/runs/{id}"): Op("Read a run with its steps", R, {200: RunDetailOut}),
    ("GET", "/api/runs/{id}/logs"): Op(
        "A run's log lines", R, {200: Page[LogOut]}, query=LogListQuery
    ),
    ("POST", "/api/runs/{id}/cancel"): Op("Cancel a queued or running run", R, {200: RunOut}),
    ("POST", "/api/runs/{id}/retry"): Op(
        "Retry a finished run", R, {201: RunOut}, body=RetryIn, body_required=False
    ),
    ("GET", "/api/runs/{id}/events"): Op(
        "A run's events (Server-Sent Events)", R, {200: None}, content="event-stream"
    ),
    ("GET", "/api/events"): Op(
        "The organization's events (Server-Sent Events)", R, {200: None}, content="event-stream"
    ),
    ("GET", "/api/stats"): Op(
        "Run statistics", "stats", {200: stats.StatsOut}, query=stats.StatsQuery
    ),
    # --- keys
    ("POST", "/api/keys"): Op(
        "Create an API key (shown once)",
        "keys",
        {201: keys.KeyCreatedOut},
        body=keys.KeyIn,
        body_required=False,
        admin=True,
    ),
    ("GET", "/api/keys"): Op("List API keys", "keys", {200: keys.KeyPage}, admin=True),
    ("DELETE", "/api/keys/{id}"): Op("Revoke an API key", "keys", {204: None}, admin=True),
    # --- secrets
    ("POST", "/api/secrets"): Op(
        "Create or replace a secret",
        "secrets",
        {200: secrets.SecretOut, 201: secrets.SecretOut},
        body=secrets.SecretIn,
        admin=True,
    ),
    ("GET", "/api/secrets"): Op("List secret names", "secrets", {200: secrets.SecretPage}),
    ("DELETE", "/api/secrets/{name}"): Op(
        "Delete a secret",
        "secrets",
        {204: None},
        path_params={"name": {"type": "string", "pattern": secrets.NAME_PATTERN}},
        admin=True,
    ),
    # --- queues
    ("GET", "/api/admin/queues"): Op(
        "Streams and consumers", "admin", {200: queues.QueueList}, admin=True
    ),
    ("GET", "/api/admin/queues/{name}"): Op(
        "A queue and this organization's messages",
        "admin",
        {200: queues.QueueDetail},
        query=queues.QueueQuery,
        path_params=_QUEUE_NAME,
        admin=True,
    ),
    ("POST", "/api/admin/queues/{name}"): Op(
        "Retry or remove dead letters",
        "admin",
        {200: queues.QueueActionOut},
        body=queues.QueueActionIn,
        path_params=_QUEUE_NAME,
        admin=True,
    ),
}
