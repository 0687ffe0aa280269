"""JSON out: datetimes as ISO 8601 UTC (``…Z``), UUIDs as strings, models by alias.

Encoding is orjson's (it writes bytes, in C). Handlers answering rows read from Postgres
use :func:`project`: the row's values under the response model's field names, without
building the model, since the row's types are already the model's (the OpenAPI tests
check every response against the document built from the same models).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel

# Datetimes are encoded by orjson itself, UTC as ``Z``: values read from Postgres are in
# UTC, and request models convert the aware datetimes they accept to UTC, so every time
# the API answers is in UTC (``iso`` is for text built by hand).
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID subclass (orjson takes only its base)
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def iso(value: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with a ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else _default(value)


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits (a run's input or output may hold one): the
        # standard library writes it exactly.
        text = json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)
        return text.encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def json_response(value: Any, *, status: int = 200) -> web.Response:
    """A JSON response; a pydantic model is dumped by alias in JSON mode."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return web.Response(status=status, body=dumps_bytes(value), content_type="application/json")


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    return tuple((name, field.alias or name) for name, field in model.model_fields.items())


def project(model: type[BaseModel], data: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """``model``'s fields, by alias, taken from ``data`` (a row plus computed values),
    unvalidated: for values whose types already are the model's."""
    return {alias: data[name] for name, alias in _fields(model)}
