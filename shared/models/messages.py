"""The run message published on ``<NS>_RUNS``: a pointer to the run row, not the run.

Postgres holds the run's input and graph; the message says which run to execute, so a
person reading ``nats stream view`` sees which workflow and fire time it stands for.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Literal, NamedTuple
from uuid import UUID

import orjson
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
        return orjson.dumps(self.__dict__, default=_uuid_text)


class RunPointer(NamedTuple):
    """A run message built from values Flowcron itself just wrote, so not validated
    again: the scheduler's path, a few microseconds per fire cheaper than
    :class:`RunMessage`. Its bytes are the same JSON as :meth:`RunMessage.to_bytes`."""

    run_id: UUID
    org_id: UUID
    workflow_id: UUID
    workflow_version: int
    trigger: Trigger
    schedule_id: UUID | None
    scheduled_for: datetime | None

    def to_bytes(self) -> bytes:
        schedule = "null" if self.schedule_id is None else f'"{self.schedule_id}"'
        return (
            f'{{"run_id":"{self.run_id}","org_id":"{self.org_id}",'
            f'"workflow_id":"{self.workflow_id}","workflow_version":{self.workflow_version:d},'
            f'"trigger":"{self.trigger}","schedule_id":{schedule},'
            f'"scheduled_for":{_instant_json(self.scheduled_for)}}}'
        ).encode()


@lru_cache(maxsize=4096)
def _instant_json(value: datetime | None) -> str:
    """An instant as orjson writes it; the fires of a burst share a few instants."""
    return orjson.dumps(value).decode()


def _uuid_text(value: object) -> str:
    """UUIDs orjson does not know by type: asyncpg's, a subclass of ``uuid.UUID``."""
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
