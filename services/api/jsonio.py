"""JSON out: datetimes as ISO 8601 UTC (``…Z``), UUIDs as strings, models by alias."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def iso(value: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with a ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def json_response(value: Any, *, status: int = 200) -> web.Response:
    """A JSON response; a pydantic model is dumped by alias in JSON mode."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return web.Response(status=status, text=dumps(value), content_type="application/json")
