"""``log_message``: write a line to the run's log.

Config: ``message`` (string; other values are written as JSON), ``level`` (``debug`` |
``info`` | ``warning`` | ``error``, default ``info``). Output: ``{"message": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from services.executor.actions import ActionContext
from services.executor.errors import ConfigError

LEVELS = ("debug", "info", "warning", "error")

log = structlog.get_logger(__name__)


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    level = config.get("level", "info")
    if level not in LEVELS:
        raise ConfigError(f"config.level must be one of {', '.join(LEVELS)}")
    if "message" not in config:
        raise ConfigError("config.message is required")
    message = config["message"]
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    await ctx.log(level, text)
    log.log(_LEVEL_NUMBERS[level], "workflow log", message=ctx.mask(text))
    return {"message": text}


_LEVEL_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
