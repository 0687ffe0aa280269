"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers has the same shape::

    {"type": "urn:flowcron:problem:validation", "title": "Request validation failed",
     "status": 422, "detail": "...", "errors": [{"field": "graph.edges[1].to",
     "message": "no node with id 'zz'"}]}

Handlers raise :class:`Problem`; :func:`problem_middleware` turns it, aiohttp's own
HTTP errors (unknown route, wrong method, body too large) and unexpected exceptions
into that shape. Only an unexpected exception gives a 500, and it is logged with its
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from pydantic import ValidationError

from services.api.jsonio import dumps

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:flowcron:problem:"


@dataclass(frozen=True)
class FieldError:
    """One located error: ``field`` is a dotted path with ``[index]`` for list items."""

    field: str
    message: str


@dataclass
class Problem(Exception):  # noqa: N818  # RFC 9457 names it a problem
    """An error answer. ``kind`` becomes the ``type`` URN; ``extra`` adds members."""

    status: int
    kind: str
    detail: str
    errors: Sequence[FieldError] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.kind}: {self.detail}"


def problem_response(problem: Problem) -> web.Response:
    title = HTTPStatus(problem.status).phrase
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + problem.kind,
        "title": title,
        "status": problem.status,
        "detail": problem.detail,
        "errors": [{"field": e.field, "message": e.message} for e in problem.errors],
        **problem.extra,
    }
    return web.Response(
        status=problem.status,
        text=dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


# --- constructors for the common cases ------------------------------------------------


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} not found")


def invalid(field_name: str, message: str) -> Problem:
    return validation_problem([FieldError(field_name, message)])


def validation_problem(errors: Sequence[FieldError]) -> Problem:
    detail = "; ".join(f"{e.field or '(body)'}: {e.message}" for e in errors[:3])
    if len(errors) > 3:
        detail += f"; and {len(errors) - 3} more"
    return Problem(422, "validation", detail, errors)


def field_path(prefix: Iterable[str | int], loc: Iterable[str | int]) -> str:
    """``("graph", "nodes", 2, "action")`` → ``graph.nodes[2].action``."""
    out = ""
    for part in (*prefix, *loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation_error(exc: ValidationError, prefix: Sequence[str] = ()) -> Problem:
    """A 422 listing each pydantic error at its field path (``prefix`` first)."""
    errors = [
        FieldError(field_path(prefix, err["loc"]), _message(err["type"], err["msg"]))
        for err in exc.errors(include_url=False)
    ]
    return validation_problem(errors)


def _message(kind: str, msg: str) -> str:
    if kind == "extra_forbidden":
        return "unknown field"
    # pydantic wraps messages raised in validators as "Value error, …".
    return msg.removeprefix("Value error, ")


# --- the middleware ----------------------------------------------------------------------


def _from_http_exception(exc: web.HTTPException) -> Problem:
    status = exc.status
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        detail = f"method {exc.method} is not allowed here; allowed: {headers['Allow']}"
    elif status == 404:
        detail = "no such route"
    elif status == 413:
        detail = "the request body is too large"
    else:
        detail = exc.text or HTTPStatus(status).phrase
        if detail.startswith(f"{status}: "):
            detail = detail[len(f"{status}: ") :]
    kind = HTTPStatus(status).phrase.lower().replace(" ", "-")
    return Problem(status, kind, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer every error as problem+json; the only source of 500s is a bug."""
    try:
        response: web.StreamResponse = await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects pass through unchanged
        return problem_response(_from_http_exception(exc))
    except asyncpg.DataError as exc:
        # Values the schema let through but Postgres refuses (a NUL in a string…):
        # bad input, not a server fault.
        return problem_response(Problem(422, "unstorable-value", f"cannot store: {exc}"))
    except Exception:  # noqa: BLE001  # the catch-all that turns bugs into logged 500s
        # A fresh logger (not one cached at import) so tests can capture the line.
        structlog.get_logger("services.api").exception(
            "unhandled error", method=request.method, path=request.path
        )
        return problem_response(
            Problem(500, "internal", "an unexpected error occurred; it has been logged")
        )
    return response


def parse_json(body: bytes) -> Any:
    """Decode a JSON body. Raises a 400 Problem for malformed JSON (or NaN/Infinity)."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(body.decode("utf-8"), parse_constant=reject_constant)
    except UnicodeDecodeError:
        raise Problem(400, "malformed-json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    except ValueError as exc:
        raise Problem(400, "malformed-json", str(exc)) from None
    except RecursionError:
        raise Problem(400, "malformed-json", "the JSON is nested too deeply") from None
