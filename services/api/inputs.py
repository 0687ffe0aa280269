"""Reading requests: JSON bodies, query strings and path ids into validated models.

Errors are located as a client sees them: body fields by their path in the body
(``graph.nodes[2].action``), query parameters and path parameters by name.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.api.keys import SETTINGS
from services.api.problems import field_path, from_validation_error, invalid, parse_json

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 64  # levels of JSON nesting a body may have


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The body validated as ``model``: 400 if it is not JSON, 422 if it does not fit.

    With ``optional``, an empty body stands for ``{}``.
    """
    raw = await request.read()
    if not raw.strip():
        if not optional:
            raise invalid("", "a JSON body is required")
        data: object = {}
    else:
        data = parse_json(raw)
    if not isinstance(data, dict):
        raise invalid("", "the body must be a JSON object")
    _check_values(data, request.app[SETTINGS].api_max_string_chars)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _check_values(data: dict[str, Any], max_chars: int) -> None:
    """Refuse what Postgres or the encoder cannot take (U+0000 in text) and what no
    request needs: nesting deeper than MAX_DEPTH, strings or keys over ``max_chars``.

    Iterative, so a deeply nested body cannot exhaust the interpreter's stack.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            raise invalid(field_path((), path[:MAX_DEPTH]), f"nested deeper than {MAX_DEPTH}")
        if isinstance(value, str):
            if "\x00" in value:
                raise invalid(field_path((), path), "text may not contain U+0000 (NUL)")
            if len(value) > max_chars:
                raise invalid(field_path((), path), f"longer than {max_chars} characters")
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise invalid(field_path((), path), "keys may not contain U+0000 (NUL)")
                if len(key) > max_chars:
                    raise invalid(field_path((), path), f"a key is longer than {max_chars}")
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string validated as ``model`` (a repeated parameter keeps its last value)."""
    data = {key: request.query.getall(key)[-1] for key in request.query}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def path_id(request: web.Request, name: str = "id") -> uuid.UUID:
    """Path parameter ``name`` as a UUID; anything else is a 422 naming the parameter."""
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid(name, f"{raw!r} is not a UUID") from None
