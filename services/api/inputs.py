"""Reading requests: JSON bodies, query strings and path ids into validated models.

Errors are located as a client sees them: body fields by their path in the body
(``graph.nodes[2].action``), query parameters and path parameters by name.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.api.problems import from_validation_error, invalid, parse_json

M = TypeVar("M", bound=BaseModel)


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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


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
