"""``http_request``: call an HTTP endpoint.

Config: ``url`` (http or https), ``method`` (default ``GET``), ``headers`` and
``query`` (objects), ``json`` (any value, sent as JSON) or ``body`` (a string),
``timeout_s`` (default 30), ``accept`` (statuses that count as success: numbers or
ranges such as ``"2xx"``, default ``["2xx"]``).

Output: ``{"status", "headers", "body"}``; the body is parsed when the response is
JSON, else it is text. The body is read in chunks and the step fails once it passes
``settings.http_max_response_bytes``. Every request carries
``Idempotency-Key: <run_id>:<node_id>`` (unless the config sets one), so a server can
tell a retry or a resumed run from a new call.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from services.executor.actions import (
    ActionContext,
    check_egress,
    require_number,
    require_str,
)
from services.executor.errors import ConfigError, StepError

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CHUNK = 64 * 1024
_SNIPPET = 200


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    method = str(config.get("method", "GET")).upper()
    if method not in METHODS:
        raise ConfigError(f"config.method must be one of {', '.join(METHODS)}")
    url = require_str(config, "url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"config.url must start with http:// or https://, not {url!r}")
    await check_egress(ctx, url)
    accept = parse_accept(config.get("accept", ["2xx"]))
    timeout_s = require_number(config, "timeout_s", default=30, low=0.001, high=86_400)
    headers = {"Idempotency-Key": ctx.idempotency_key, **_mapping(config, "headers")}
    body = _request_body(config)
    try:
        async with ctx.http.request(
            method,
            url,
            headers=headers,
            params=_mapping(config, "query"),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            **body,
        ) as response:
            raw = await read_limited(response, ctx.settings.http_max_response_bytes, url)
            parsed = decode_body(response, raw)
    except TimeoutError:
        raise StepError(
            f"{method} {url}: no complete response within {timeout_s:g}s", kind="timeout"
        ) from None
    except aiohttp.ClientError as exc:
        kind = "connection" if isinstance(exc, aiohttp.ClientConnectionError) else "error"
        raise StepError(f"{method} {url}: {type(exc).__name__}: {exc}", kind=kind) from None
    if not any(low <= response.status <= high for low, high in accept):
        snippet = raw[:_SNIPPET].decode("utf-8", "replace")
        raise StepError(
            f"{method} {url} answered HTTP {response.status}, not accepted: {snippet}",
            kind=f"http_{response.status}",
        )
    return {"status": response.status, "headers": dict(response.headers), "body": parsed}


def parse_accept(value: Any) -> list[tuple[int, int]]:
    """``[200, "2xx", "404"]`` → inclusive status ranges."""
    items = value if isinstance(value, list) else [value]
    ranges = []
    for item in items:
        text = str(item).strip().lower()
        if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
            ranges.append((int(text[0]) * 100, int(text[0]) * 100 + 99))
        elif text.isdigit() and 100 <= int(text) <= 599:
            ranges.append((int(text), int(text)))
        else:
            raise ConfigError(f"config.accept: {item!r} is not a status (200) or a range (2xx)")
    return ranges


async def read_limited(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    """The whole body, failing as soon as it is larger than ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise StepError(f"response from {url} is {response.content_length} bytes, over {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise StepError(f"response from {url} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(response: aiohttp.ClientResponse, raw: bytes) -> Any:
    """JSON when the response says so (and parses), else text."""
    charset = response.charset or "utf-8"
    text = raw.decode(charset, "replace")
    mime = response.content_type.lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _mapping(config: dict[str, Any], key: str) -> dict[str, str]:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"config.{key} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _request_body(config: dict[str, Any]) -> dict[str, Any]:
    if "json" in config and "body" in config:
        raise ConfigError("config.json and config.body are exclusive")
    if "json" in config:
        return {"json": config["json"]}
    if "body" in config:
        body = config["body"]
        return {"data": body if isinstance(body, str) else json.dumps(body)}
    return {}
