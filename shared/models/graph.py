"""The workflow graph (DESIGN "Workflow graph"), validated when a workflow is written.

Validation errors name the node or edge at fault, in pydantic's location format, so
the API can answer ``nodes[2].action`` or ``edges[0].from`` instead of a bare message.
"""

from __future__ import annotations

from collections import defaultdict, deque
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class NodeType(StrEnum):
    TRIGGER = "trigger"
    ACTION = "action"
    CONDITION = "condition"
    TRANSFORM = "transform"
    LOOP = "loop"


class ActionName(StrEnum):
    HTTP_REQUEST = "http_request"
    LOG_MESSAGE = "log_message"
    SLACK_MESSAGE = "slack_message"
    EMAIL_SEND = "email_send"
    DATABASE_QUERY = "database_query"
    DELAY = "delay"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryPolicy(Strict):
    """Retries of one node: ``max_attempts`` tries in all, waiting ``backoff_s`` × 2ⁿ."""

    max_attempts: int = Field(1, ge=1, le=100)
    backoff_s: float = Field(1.0, ge=0, le=3600)
    max_backoff_s: float = Field(300.0, ge=0, le=86_400)


class Node(Strict):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: NodeType
    name: str = ""
    action: ActionName | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(None, gt=0, le=86_400)
    on_error: Literal["fail", "continue", "route"] = "fail"

    @model_validator(mode="after")
    def _action_matches_type(self) -> Node:
        if self.type is NodeType.ACTION and self.action is None:
            raise PydanticCustomError("missing_action", "an action node needs an 'action'")
        if self.type is not NodeType.ACTION and self.action is not None:
            raise PydanticCustomError(
                "unexpected_action", "only nodes of type 'action' take an 'action'"
            )
        if self.type is NodeType.CONDITION and not isinstance(self.config.get("expression"), str):
            raise PydanticCustomError(
                "missing_expression", "a condition node needs config.expression (a string)"
            )
        return self


class Edge(Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    branch: Literal["true", "false", "error"] | None = None


class WorkflowGraph(Strict):
    """A workflow graph: nodes joined by edges, starting at exactly one trigger."""

    name: str = Field("", max_length=200)
    nodes: list[Node] = Field(min_length=1, max_length=500)
    edges: list[Edge] = Field(default_factory=list, max_length=2000)

    @model_validator(mode="after")
    def _check_structure(self) -> WorkflowGraph:
        errors = structure_errors(self)
        if errors:
            raise ValidationError.from_exception_data("WorkflowGraph", errors)
        return self

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def trigger(self) -> Node:
        return next(n for n in self.nodes if n.type is NodeType.TRIGGER)

    def dump(self) -> dict[str, Any]:
        """The graph as JSON, with edges spelled ``from`` / ``to`` as written."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _error(loc: tuple[str | int, ...], kind: str, message: str) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": None}


def structure_errors(graph: WorkflowGraph) -> list[InitErrorDetails]:
    """Every structural fault of ``graph``, each located at its node or edge."""
    errors: list[InitErrorDetails] = []
    first_index: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        if node.id in first_index:
            errors.append(
                _error(("nodes", i, "id"), "duplicate_id", f"duplicate node id {node.id!r}")
            )
        else:
            first_index[node.id] = i
    triggers = [i for i, n in enumerate(graph.nodes) if n.type is NodeType.TRIGGER]
    if not triggers:
        errors.append(
            _error(("nodes",), "no_trigger", "a workflow needs one node of type 'trigger'")
        )
    for extra in triggers[1:]:
        errors.append(
            _error(("nodes", extra, "type"), "second_trigger", "only one 'trigger' node is allowed")
        )

    errors.extend(_edge_errors(graph))
    if errors:
        return errors
    cycle = find_cycle(graph)
    if cycle:
        errors.append(_error(("edges",), "cycle", "the graph has a cycle: " + " -> ".join(cycle)))
    return errors


def _edge_errors(graph: WorkflowGraph) -> list[InitErrorDetails]:
    errors: list[InitErrorDetails] = []
    by_id = {n.id: n for n in graph.nodes}
    for i, edge in enumerate(graph.edges):
        for end, node_id in (("from", edge.source), ("to", edge.target)):
            if node_id not in by_id:
                errors.append(
                    _error(("edges", i, end), "unknown_node", f"no node with id {node_id!r}")
                )
        source = by_id.get(edge.source)
        if edge.branch in ("true", "false") and source and source.type is not NodeType.CONDITION:
            errors.append(
                _error(
                    ("edges", i, "branch"),
                    "branch_not_condition",
                    f"branch {edge.branch!r} is only allowed on edges leaving a 'condition' node",
                )
            )
        if edge.branch == "error" and source and source.on_error != "route":
            errors.append(
                _error(
                    ("edges", i, "branch"),
                    "error_branch",
                    "branch 'error' needs on_error 'route' on its source node",
                )
            )
        if edge.target in by_id and by_id[edge.target].type is NodeType.TRIGGER:
            errors.append(
                _error(("edges", i, "to"), "edge_into_trigger", "no edge may enter the trigger")
            )
        if edge.source == edge.target:
            errors.append(
                _error(("edges", i, "to"), "self_loop", "an edge may not join a node to itself")
            )
    return errors


def find_cycle(graph: WorkflowGraph) -> list[str]:
    """A cycle as a list of node ids (first repeated last), or [] when there is none."""
    successors: dict[str, list[str]] = defaultdict(list)
    indegree = {n.id: 0 for n in graph.nodes}
    for edge in graph.edges:
        successors[edge.source].append(edge.target)
        indegree[edge.target] += 1
    ready = deque(n for n, d in indegree.items() if d == 0)
    seen = 0
    while ready:
        node = ready.popleft()
        seen += 1
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if seen == len(indegree):
        return []
    # Walk forward inside the nodes left over (each has a predecessor among them).
    left = {n for n, d in indegree.items() if d > 0}
    node = next(iter(sorted(left)))
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = next(s for s in successors[node] if s in left)
    return [*path[path.index(node) :], node]
