"""Where a node runs: the whole run, or one item of a loop body.

Step ids are ``prefix + node id``: ``fetch`` at the top, ``each[2].fetch`` for node
``fetch`` of item 2 of loop ``each`` (loops nest: ``outer[0].inner[1].fetch``). A
body's trigger outputs ``{"item", "index"}``; its templates also see ``loop.item``,
``loop.index`` and, under ``nodes``, the nodes finished outside the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.executor.joins import Outcome


@dataclass(frozen=True)
class Scope:
    prefix: str = ""
    loop: Mapping[str, Any] | None = None  # {"item", "index"} inside a loop body
    outer: Mapping[str, Outcome] = field(default_factory=dict)

    def step_id(self, node_id: str) -> str:
        return self.prefix + node_id

    def item(self, loop_node: str, index: int, item: Any, outer: Mapping[str, Outcome]) -> Scope:
        """The scope of item ``index`` of loop node ``loop_node`` inside this one."""
        return Scope(
            prefix=f"{self.prefix}{loop_node}[{index}].",
            loop={"item": item, "index": index},
            outer={**self.outer, **outer},
        )


ROOT = Scope()
