"""``loop`` nodes: run the node's ``body`` graph once per item of ``config.items``.

* ``config.items``: a list, usually a template (``"{{ nodes.fetch.output.body }}"``);
  at most :data:`MAX_ITEMS` items.
* ``config.concurrency``: items in progress at once (default 1, at most 100).
* Each item runs the body with the engine's own rules (joins, retries, ``on_error`` of
  each body node); its steps are recorded as ``<loop>[<index>].<node>``, so a resumed
  run skips the body steps that already succeeded.
* Output: the list of per-item outputs, in item order; an item's output is the body's
  output (``{node_id: output}`` of its last nodes).
* A failed item follows the body's ``on_error``: ``fail`` (default) fails the loop
  node with ``item <i> failed: <error>`` and cancels the items in progress;
  ``continue`` makes that item's output ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.executor.errors import ConfigError, StepError
from services.executor.joins import Outcome
from services.executor.scope import Scope
from shared.models.graph import Node

if TYPE_CHECKING:
    from services.executor.steps import StepRunner

MAX_ITEMS = 10_000


async def run_loop(
    steps: StepRunner,
    node: Node,
    config: dict[str, Any],
    scope: Scope,
    outer: Mapping[str, Outcome],
) -> list[Any]:
    from services.executor.engine import Engine  # the engine runs nodes, loops included

    items = config.get("items")
    if not isinstance(items, list):
        raise ConfigError(f"config.items must be a list, not {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise ConfigError(f"config.items has {len(items)} items, more than {MAX_ITEMS}")
    body = node.body
    if body is None:  # refused when the graph is saved; kept for mypy
        raise ConfigError("a loop node needs a body")
    gate = asyncio.Semaphore(int(config.get("concurrency", 1)))

    async def one(index: int, item: Any) -> Any:
        async with gate:
            child = scope.item(node.id, index, item, outer)
            engine = Engine(
                body, steps.store, steps, steps.events, succeeded=steps.succeeded, scope=child
            )
            result = await engine.execute()
        if result.status == "succeeded":
            return result.output
        if body.on_error == "continue":
            return {"error": result.error}
        raise StepError(f"item {index} failed: {result.error}", retryable=False)

    tasks = [asyncio.create_task(one(i, item)) for i, item in enumerate(items)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
