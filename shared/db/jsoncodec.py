"""JSON of ``json``/``jsonb`` columns: orjson (in C), except where it would change a value.

orjson reads an integer beyond 64 bits as a float (its last digits lost) and refuses to
write one; Postgres keeps any number in ``jsonb`` and a workflow's inputs and outputs
may hold one (an id from another system, a sum). Such texts and values take the
standard library's path, which keeps them exactly, as the codecs did before orjson.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from typing import Any

import orjson

# 19 digits or more: maybe beyond 64 bits (digits inside strings also match; they only
# take the slower path).
_LONG_DIGITS = re.compile(r"\d{19,}")


def loads(text: str | bytes) -> Any:
    if _LONG_DIGITS.search(text if isinstance(text, str) else text.decode()) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # a number beyond a double (1e400): json reads it
            pass
    return json.loads(text)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()  # as orjson writes it
    return str(value)  # as default=str does for orjson


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)
