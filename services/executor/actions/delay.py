"""``delay``: wait ``config.seconds`` (0 to 24 hours) and succeed.

The executor keeps the run's message alive with in-progress acks meanwhile, so a long
delay is not redelivered. Output: ``{"seconds": ...}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.executor.actions import ActionContext, require_number

MAX_DELAY_S = 86_400.0


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    seconds = require_number(config, "seconds", default=-1, low=0, high=MAX_DELAY_S)
    await asyncio.sleep(seconds)
    return {"seconds": seconds}
