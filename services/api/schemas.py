"""Request and response bodies (pydantic). Requests forbid unknown fields.

Requests are validated at the edge by :mod:`services.api.inputs`; responses are built
from database rows and dumped by :mod:`services.api.jsonio`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.cron import MAX_PREVIEW
from shared.models.graph import WorkflowGraph

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
Trigger = Literal["schedule", "manual", "backfill", "retry"]
MAX_INT = 2**31 - 1  # Postgres integer
PREVIEW_MAX_YEAR = 9000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_null(value: Any) -> Any:
    """For PATCH fields: absent means "unchanged", so an explicit null is an error."""
    if value is None:
        raise ValueError("may not be null; leave the field out to keep it unchanged")
    return value


# --- workflows ----------------------------------------------------------------------


class WorkflowIn(Request):
    """``POST /api/workflows`` and ``PUT /api/workflows/{id}``."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    graph: WorkflowGraph
    max_concurrency: int | None = Field(None, ge=1, le=MAX_INT)


class WorkflowPatch(Request):
    """``PATCH /api/workflows/{id}``: only the fields present change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    graph: WorkflowGraph | None = None
    max_concurrency: int | None = Field(None, ge=1, le=MAX_INT)  # null: no limit

    _no_nulls = field_validator("name", "description", "graph", mode="before")(_not_null)


class PageQuery(Request):
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = None


class WorkflowListQuery(PageQuery):
    q: str | None = Field(None, max_length=200, description="Name contains (any case).")


class WorkflowOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    graph: dict[str, Any]
    version: int
    max_concurrency: int | None
    created_at: datetime
    updated_at: datetime


# --- schedules ----------------------------------------------------------------------


class ScheduleListQuery(PageQuery):
    workflow_id: uuid.UUID | None = None
    enabled: bool | None = None


# --- cron preview -------------------------------------------------------------------


class ValidateCronIn(Request):
    expression: str = Field(max_length=200)
    timezone: str = Field("UTC", max_length=64)
    count: int = Field(5, ge=1, le=MAX_PREVIEW)
    start: datetime | None = Field(None, description="Preview after this instant; naive = UTC.")
    schedule_id: uuid.UUID | None = Field(
        None, description="Hash H fields as this schedule will (default: a fixed seed)."
    )

    @field_validator("start")
    @classmethod
    def _start_in_range(cls, value: datetime | None) -> datetime | None:
        # Fire times are computed by adding to it: keep clear of datetime's year limits.
        if value is not None and not 1970 <= value.year <= PREVIEW_MAX_YEAR:
            raise ValueError(f"must be between 1970 and {PREVIEW_MAX_YEAR}")
        return value


class ValidateCronOut(BaseModel):
    valid: bool
    description: str | None
    next_runs: list[datetime]
    error: str | None


# --- runs ---------------------------------------------------------------------------


class RunIn(Request):
    input: dict[str, Any] = Field(default_factory=dict)


class RunListQuery(PageQuery):
    workflow_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None
    status: RunStatus | None = None
    created_after: datetime | None = Field(None, description="Created at or after; naive = UTC.")
    created_before: datetime | None = Field(None, description="Created before; naive = UTC.")

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RetryIn(Request):
    from_failed: bool = Field(
        False,
        strict=True,
        description="Resume after the steps that succeeded (at the run's own workflow "
        "version) instead of starting over at the current version.",
    )


class LogListQuery(Request):
    limit: int = Field(200, ge=1, le=1000)
    cursor: str | None = None
    node_id: str | None = Field(None, max_length=64)


class RunOut(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    schedule_id: uuid.UUID | None
    trigger: Trigger
    scheduled_for: datetime | None
    status: RunStatus
    attempt: int
    input: dict[str, Any]
    output: Any
    error: str | None
    idempotency_key: str | None
    created_at: datetime
    published_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    retry_of: uuid.UUID | None = Field(None, description="The run this one retries.")
    wait_reason: str | None = Field(
        None, description="Why a queued or running run is waiting (null when it is not)."
    )


class StepOut(BaseModel):
    node_id: str
    node_type: str
    status: StepStatus
    attempt: int
    input: Any
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class RunDetailOut(RunOut):
    steps: list[StepOut]


class VersionOut(BaseModel):
    version: int
    graph: dict[str, Any]
    created_at: datetime


class LogOut(BaseModel):
    id: int
    run_id: uuid.UUID
    node_id: str | None
    level: str
    message: str
    data: Any
    created_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
