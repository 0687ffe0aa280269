"""Opaque cursors for keyset pagination.

A cursor encodes the sort key of the last item of a page (``(created_at, id)`` for
most lists, the log id for logs) as URL-safe base64 JSON. Clients pass it back
unchanged; a cursor that does not decode is a 422 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.api.problems import invalid


def _encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid("cursor", "not a cursor returned by this API") from None


def encode_time_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    return _encode([created_at.isoformat(), str(item_id)])


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """``(created_at, id)`` of the last item seen, or None for the first page."""
    if cursor is None:
        return None
    value = _decode(cursor)
    try:
        when, item_id = value
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(item_id)
    except (TypeError, ValueError):
        raise invalid("cursor", "not a cursor returned by this API") from None


def encode_id_cursor(item_id: int) -> str:
    return _encode([item_id])


def decode_id_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = _decode(cursor)
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not 0 <= value[0] < 2**63
    ):
        raise invalid("cursor", "not a cursor returned by this API")
    return value[0]


def split_page(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], bool]:
    """Queries fetch ``limit + 1`` rows: the extra one says whether a next page exists."""
    return rows[:limit], len(rows) > limit
