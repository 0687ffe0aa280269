"""When a node runs, is skipped or waits: the join rule, as pure functions.

The rule (also in ``docs/workflows.md``):

* An edge is *resolved* once its source node has finished (succeeded, failed,
  skipped or cancelled).
* A resolved edge is *live* when its source succeeded and

  - the edge has no ``branch``, or
  - its ``branch`` (``"true"``/``"false"``) equals the source condition's result;

  or when its ``branch`` is ``"error"`` and the source failed with ``on_error: route``.
  Every other resolved edge is *dead*: ``branch: error`` edges of a node that
  succeeded, plain edges of a node that failed and routed, and every edge leaving a
  skipped or cancelled node.
* A node runs once all its incoming edges are resolved and at least one is live
  (an OR-join that waits for every branch). A node all of whose incoming edges are
  dead is ``skipped``, and the skip propagates downstream the same way.
* The trigger has no incoming edge and always runs. Any other node without incoming
  edges is unreachable and is ``skipped``.
* The run's output is ``{node_id: output}`` of the nodes with no outgoing edge that
  succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.models.graph import Edge, GraphShape, Node, NodeType

StepStatus = Literal["succeeded", "failed", "skipped", "cancelled"]
EdgeState = Literal["pending", "live", "dead"]
Readiness = Literal["wait", "run", "skip"]


@dataclass(frozen=True)
class Outcome:
    """How one node ended. ``routed``: it failed and ``on_error: route`` took over."""

    status: StepStatus
    output: Any = None
    error: str | None = None
    routed: bool = False
    attempts: int = field(default=1, compare=False)

    @property
    def fails_run(self) -> bool:
        """A failure that nothing handles fails the whole run."""
        return self.status == "failed" and not self.routed


def edge_state(edge: Edge, source: Outcome | None) -> EdgeState:
    """State of ``edge`` given how its source ended (None: not yet)."""
    if source is None:
        return "pending"
    if source.status == "succeeded":
        if edge.branch is None:
            return "live"
        if edge.branch == "error":
            return "dead"
        result = source.output.get("result") if isinstance(source.output, Mapping) else None
        return "live" if str(bool(result)).lower() == edge.branch else "dead"
    if source.status == "failed" and source.routed and edge.branch == "error":
        return "live"
    return "dead"


def readiness(node: Node, incoming: Iterable[Edge], outcomes: Mapping[str, Outcome]) -> Readiness:
    """Whether ``node`` should wait, run now, or be skipped."""
    states = [edge_state(edge, outcomes.get(edge.source)) for edge in incoming]
    if not states:
        return "run" if node.type is NodeType.TRIGGER else "skip"
    if "pending" in states:
        return "wait"
    return "run" if "live" in states else "skip"


def incoming_edges(graph: GraphShape) -> dict[str, list[Edge]]:
    edges: dict[str, list[Edge]] = {node.id: [] for node in graph.nodes}
    for edge in graph.edges:
        edges[edge.target].append(edge)
    return edges


def run_output(graph: GraphShape, outcomes: Mapping[str, Outcome]) -> dict[str, Any]:
    """``{node_id: output}`` of the succeeded nodes that have no outgoing edge."""
    sources = {edge.source for edge in graph.edges}
    return {
        node.id: outcomes[node.id].output
        for node in graph.nodes
        if node.id not in sources
        and node.id in outcomes
        and outcomes[node.id].status == "succeeded"
    }
