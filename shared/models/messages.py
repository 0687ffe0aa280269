"""The run message published on ``<NS>_RUNS``: a pointer to the run row, not the run.

Postgres holds the run's input and graph; the message says which run to execute, so a
person reading ``nats stream view`` sees which workflow and fire time it stands for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

Trigger = Literal["schedule", "manual", "backfill", "retry"]


class RunMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: UUID
    org_id: UUID
    workflow_id: UUID
    workflow_version: int
    trigger: Trigger
    schedule_id: UUID | None = None
    scheduled_for: datetime | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
