"""``slack_message``: post to a Slack incoming webhook.

Config: ``webhook_url``, ``text``, optional ``blocks`` (a list, Slack's Block Kit).
Any answer outside 2xx fails the step. Output: ``{"status", "body"}``. The request
carries the same ``Idempotency-Key`` as ``http_request``.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.executor.actions import ActionContext, check_egress, require_str
from services.executor.actions.http_request import read_limited
from services.executor.errors import ConfigError, StepError

TIMEOUT_S = 30.0


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    url = require_str(config, "webhook_url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("config.webhook_url must start with https://")
    await check_egress(ctx, url)
    payload: dict[str, Any] = {"text": require_str(config, "text")}
    if "blocks" in config:
        if not isinstance(config["blocks"], list):
            raise ConfigError("config.blocks must be a list")
        payload["blocks"] = config["blocks"]
    try:
        async with ctx.http.post(
            url,
            json=payload,
            headers={"Idempotency-Key": ctx.idempotency_key},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        ) as response:
            raw = await read_limited(response, ctx.settings.http_max_response_bytes, url)
    except TimeoutError:
        raise StepError(f"Slack webhook: no answer within {TIMEOUT_S:g}s", kind="timeout") from None
    except aiohttp.ClientError as exc:
        kind = "connection" if isinstance(exc, aiohttp.ClientConnectionError) else "error"
        raise StepError(f"Slack webhook: {type(exc).__name__}: {exc}", kind=kind) from None
    body = raw.decode("utf-8", "replace")
    if not 200 <= response.status < 300:
        raise StepError(
            f"Slack webhook answered HTTP {response.status}: {body[:200]}",
            kind=f"http_{response.status}",
        )
    return {"status": response.status, "body": body}
