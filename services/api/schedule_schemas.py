"""Request and response models of the schedule endpoints (docs/scheduling.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.cron import MAX_PREVIEW

CatchupPolicy = Literal["skip", "latest", "all"]
OverlapPolicy = Literal["allow", "skip", "buffer_one", "cancel_other"]
MAX_BACKFILL = 1000
_YEAR_S = 366 * 86_400

# Every writable column with its default, in one place (INSERT and UPDATE use it).
POLICY_DEFAULTS: dict[str, Any] = {
    "name": "",
    "enabled": True,
    "input": {},
    "catchup_policy": "latest",
    "catchup_window_s": 3600,
    "max_catchup_runs": 10,
    "catchup_interval_s": 1.0,
    "overlap_policy": "allow",
    "jitter_s": 0,
    "start_at": None,
    "end_at": None,
    "max_runs": None,
    "auto_pause_after": None,
    "paused_until": None,
    "pause_note": "",
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Fields(_Request):
    """The fields of a schedule; on PATCH every one is optional and null is refused."""

    name: str = Field("", max_length=200)
    enabled: bool = True
    input: dict[str, Any] = Field(default_factory=dict)
    catchup_policy: CatchupPolicy = "latest"
    catchup_window_s: int = Field(3600, ge=0, le=_YEAR_S)
    max_catchup_runs: int = Field(10, ge=1, le=1000)
    catchup_interval_s: float = Field(1.0, ge=0, le=3600)
    overlap_policy: OverlapPolicy = "allow"
    jitter_s: int = Field(0, ge=0, le=3600)
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = Field(None, ge=1)
    auto_pause_after: int | None = Field(None, ge=1, le=1000)
    paused_until: datetime | None = None
    pause_note: str = Field("", max_length=500)

    @field_validator("start_at", "end_at", "paused_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2026-01-01T00:00:00Z")
        return value.astimezone(UTC) if value is not None else None


class ScheduleCreate(_Fields):
    cron: str = Field(min_length=1, max_length=200)
    timezone: str = Field("UTC", min_length=1, max_length=64)

    @field_validator("end_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_at")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after start_at")
        return value


NULLABLE = frozenset({"start_at", "end_at", "max_runs", "auto_pause_after", "paused_until"})


class ScheduleUpdate(_Request):
    """PATCH: only the fields present change; null clears the nullable ones."""

    cron: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    input: dict[str, Any] | None = None
    catchup_policy: CatchupPolicy | None = None
    catchup_window_s: int | None = Field(None, ge=0, le=_YEAR_S)
    max_catchup_runs: int | None = Field(None, ge=1, le=1000)
    catchup_interval_s: float | None = Field(None, ge=0, le=3600)
    overlap_policy: OverlapPolicy | None = None
    jitter_s: int | None = Field(None, ge=0, le=3600)
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = Field(None, ge=1)
    auto_pause_after: int | None = Field(None, ge=1, le=1000)
    paused_until: datetime | None = None
    pause_note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _no_nulls(self) -> ScheduleUpdate:
        for name in self.model_fields_set - NULLABLE:
            if getattr(self, name) is None:
                raise PydanticCustomError(
                    "null_field",
                    "{field} may not be null; leave it out to keep it",
                    {"field": name},
                )
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class DryRunQuery(_Request):
    dry_run: bool = False
    count: int = Field(5, ge=1, le=MAX_PREVIEW)


class PreviewQuery(_Request):
    count: int = Field(10, ge=1, le=MAX_PREVIEW)


class PauseIn(_Request):
    until: datetime | None = Field(
        None, description="Resume by itself then; absent = until resumed."
    )
    note: str = Field("", max_length=500)


class TriggerIn(_Request):
    input: dict[str, Any] | None = Field(None, description="Defaults to the schedule's input.")


class BackfillIn(_Request):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _range(self) -> BackfillIn:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ScheduleOut(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    name: str
    is_default: bool
    cron: str
    description: str
    timezone: str
    enabled: bool
    input: dict[str, Any]
    catchup_policy: CatchupPolicy
    catchup_window_s: int
    max_catchup_runs: int
    catchup_interval_s: float
    overlap_policy: OverlapPolicy
    jitter_s: int
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    auto_pause_after: int | None
    consecutive_failures: int
    paused: bool
    paused_until: datetime | None
    pause_note: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    total_runs: int
    successful_runs: int
    failed_runs: int
    success_rate: float | None
    created_at: datetime
    updated_at: datetime


class PreviewOut(BaseModel):
    next_runs: list[datetime]
    """Fire times with the schedule's jitter applied: the instants runs will start."""


class DecisionOut(BaseModel):
    key: str
    fire_time: datetime
    decision: str
    run_id: uuid.UUID | None
    reason: str
    created_at: datetime


class BackfillOut(BaseModel):
    created: int
    existing: int
    run_ids: list[uuid.UUID]
