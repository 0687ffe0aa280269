"""Parsed workflow graphs by (workflow id, version), cached: a version never changes,
so each replica validates a graph once, not once per run."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pydantic

from shared.models.graph import WorkflowGraph

CACHE_SIZE = 1024


@dataclass(frozen=True)
class ParsedGraph:
    graph: WorkflowGraph
    uses_secrets: bool  # whether any template may read ``secrets``


class GraphCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[tuple[uuid.UUID, int], ParsedGraph] = OrderedDict()

    def get(self, workflow_id: uuid.UUID, version: int) -> ParsedGraph | None:
        key = (workflow_id, version)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def parse(self, workflow_id: uuid.UUID, version: int, raw: Any) -> ParsedGraph | str:
        """Validate and cache ``raw``; an error message when it is not a valid graph."""
        if raw is None:
            return f"workflow version {version} not found"
        try:
            graph = WorkflowGraph.model_validate(raw)
        except pydantic.ValidationError as exc:
            return f"the workflow graph is invalid: {exc}"
        parsed = ParsedGraph(graph, "secrets" in json.dumps(raw))
        self._items[(workflow_id, version)] = parsed
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return parsed
