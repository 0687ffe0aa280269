"""``delay``: wait ``config.seconds`` (0 to 24 hours) and succeed.

The executor keeps the run's message alive with in-progress acks meanwhile, so a long
delay is not redelivered; the run's ``wait_reason`` says until when. Output:
``{"seconds": ...}``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.executor.actions import ActionContext, require_number

MAX_DELAY_S = 86_400.0
# Shorter delays are not worth two writes saying so.
WAIT_REASON_FROM_S = 1.0


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    seconds = require_number(config, "seconds", default=-1, low=0, high=MAX_DELAY_S)
    if seconds >= WAIT_REASON_FROM_S:
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        await ctx.wait_reason(
            f"in a delay: node {ctx.node_id!r} until {until.isoformat(timespec='milliseconds')}"
        )
        await asyncio.sleep(seconds)
        await ctx.wait_reason(None)
    else:
        await asyncio.sleep(seconds)
    return {"seconds": seconds}
