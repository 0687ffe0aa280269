"""The workflow graph (DESIGN "Workflow graph"), validated when a workflow is written.

Validation errors name the node or edge at fault, in pydantic's location format, so
the API can answer ``nodes[2].action`` or ``edges[0].from`` instead of a bare message.

Checked: one trigger, unique ids, edges between existing nodes, no cycle, ``branch``
only where it means something, a loop's ``body`` is a valid graph of its own (checked
the same way, errors located under ``nodes[i].body``), and every ``nodes.X`` in a
template names a node upstream of the node using it (for a node inside a loop body:
upstream inside the body, or upstream of the loop), located at the field
(``nodes[3].config.message``).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from enum import StrEnum
from typing import Any, Literal

import jinja2
from jinja2 import nodes as jnodes
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
MAX_LOOP_CONCURRENCY = 100
RETRY_ON_PATTERN = r"^(any|timeout|connection|error|http_[1-5]xx|http_[1-5][0-9]{2})$"
_RETRY_ON = re.compile(RETRY_ON_PATTERN)


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
    """Retries of one node: ``max_attempts`` tries in all, waiting ``backoff_s`` × 2ⁿ.

    ``retry_on``: which failures are retried: ``any`` (default), ``timeout``,
    ``connection`` (cannot connect, connection reset), ``http_5xx`` / ``http_429``
    (statuses or classes of an HTTP answer not accepted), ``error`` (any other failure
    of the action). Template and config errors are never retried.
    """

    max_attempts: int = Field(1, ge=1, le=100)
    backoff_s: float = Field(1.0, ge=0, le=3600)
    max_backoff_s: float = Field(300.0, ge=0, le=86_400)
    retry_on: list[str] = Field(
        default_factory=lambda: ["any"],
        min_length=1,
        max_length=20,
        json_schema_extra={"items": {"pattern": RETRY_ON_PATTERN}},
    )

    @model_validator(mode="after")
    def _known_kinds(self) -> RetryPolicy:
        for kind in self.retry_on:
            if not _RETRY_ON.match(kind):
                raise PydanticCustomError(
                    "retry_on",
                    "retry_on items are any, timeout, connection, error, http_5xx or http_503",
                )
        return self


class Node(Strict):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: NodeType
    name: str = ""
    action: ActionName | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(None, gt=0, le=86_400)
    on_error: Literal["fail", "continue", "route"] = "fail"
    body: LoopBody | None = None

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
        if self.type is NodeType.LOOP:
            if self.body is None:
                raise PydanticCustomError("missing_body", "a loop node needs a 'body' graph")
            if "items" not in self.config:
                raise PydanticCustomError(
                    "missing_items", "a loop node needs config.items (a list or a template)"
                )
            concurrency = self.config.get("concurrency", 1)
            if (
                isinstance(concurrency, bool)
                or not isinstance(concurrency, int)
                or not 1 <= concurrency <= MAX_LOOP_CONCURRENCY
            ):
                raise PydanticCustomError(
                    "loop_concurrency",
                    f"config.concurrency must be an integer from 1 to {MAX_LOOP_CONCURRENCY}",
                )
        elif self.body is not None:
            raise PydanticCustomError("unexpected_body", "only loop nodes take a 'body'")
        return self


class Edge(Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    branch: Literal["true", "false", "error"] | None = None


class GraphShape(Strict):
    """Nodes joined by edges, starting at exactly one trigger (checked by the root)."""

    nodes: list[Node] = Field(min_length=1, max_length=500)
    edges: list[Edge] = Field(default_factory=list, max_length=2000)

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def trigger(self) -> Node:
        return next(n for n in self.nodes if n.type is NodeType.TRIGGER)


class LoopBody(GraphShape):
    """A loop's body: run once per item, its trigger's output being
    ``{"item", "index"}``. ``on_error``: what a failed item does to the loop —
    ``fail`` (the loop fails, items still running are cancelled) or ``continue``
    (that item's output is ``{"error": message}``)."""

    on_error: Literal["fail", "continue"] = "fail"


class WorkflowGraph(GraphShape):
    """A workflow graph; ``timeout_s``: the limit of a whole run (``timed_out``)."""

    name: str = Field("", max_length=200)
    timeout_s: float | None = Field(None, gt=0, le=7 * 86_400)

    @model_validator(mode="after")
    def _check_structure(self) -> WorkflowGraph:
        errors = structure_errors(self)
        if not errors:
            errors = reference_errors(self)
        if errors:
            raise ValidationError.from_exception_data("WorkflowGraph", errors)
        return self

    def dump(self) -> dict[str, Any]:
        """The graph as JSON, with edges spelled ``from`` / ``to`` as written."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


Node.model_rebuild()


def _error(loc: tuple[str | int, ...], kind: str, message: str) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": None}


def structure_errors(graph: GraphShape, loc: tuple[str | int, ...] = ()) -> list[InitErrorDetails]:
    """Every structural fault of ``graph`` and of its loop bodies, each located at its
    node or edge (under ``loc``, the place of ``graph`` itself)."""
    errors: list[InitErrorDetails] = []
    for error in _own_structure_errors(graph):
        error["loc"] = (*loc, *error["loc"])
        errors.append(error)
    for i, node in enumerate(graph.nodes):
        if node.body is not None:
            errors.extend(structure_errors(node.body, (*loc, "nodes", i, "body")))
    return errors


def _own_structure_errors(graph: GraphShape) -> list[InitErrorDetails]:
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


def _edge_errors(graph: GraphShape) -> list[InitErrorDetails]:
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


def find_cycle(graph: GraphShape) -> list[str]:
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


# Template references ---------------------------------------------------------------

# Parsing only: nothing is rendered with this environment, so escaping is moot.
_PARSER = jinja2.Environment(autoescape=True)
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


def ancestors(graph: GraphShape) -> dict[str, set[str]]:
    """For each node, the ids of every node upstream of it (edges followed backwards)."""
    parents: dict[str, list[str]] = defaultdict(list)
    for edge in graph.edges:
        parents[edge.target].append(edge.source)
    found: dict[str, set[str]] = {}

    def visit(node_id: str) -> set[str]:
        if node_id not in found:
            found[node_id] = set()  # guards a cycle (refused earlier anyway)
            result: set[str] = set()
            for parent in parents[node_id]:
                result.add(parent)
                result |= visit(parent)
            found[node_id] = result
        return found[node_id]

    for node in graph.nodes:
        visit(node.id)
    return found


def template_node_refs(source: str) -> set[str] | str:
    """The node ids a template reads as ``nodes.X`` / ``nodes["X"]``; a syntax error
    message instead when it does not parse."""
    if "{{" not in source and "{%" not in source:
        return set()
    try:
        tree = _PARSER.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return _refs(tree)


def expression_node_refs(expression: str) -> set[str] | str:
    """As :func:`template_node_refs`, for a condition's expression (braces optional)."""
    match = _SINGLE.match(expression)
    source = expression if match else "{{ " + expression + " }}"
    return template_node_refs(source)


def _refs(tree: jnodes.Node) -> set[str]:
    refs: set[str] = set()
    for item in tree.find_all((jnodes.Getattr, jnodes.Getitem)):
        if isinstance(item, jnodes.Getattr) and _is_nodes(item.node):
            refs.add(item.attr)
        elif (
            isinstance(item, jnodes.Getitem)
            and _is_nodes(item.node)
            and isinstance(item.arg, jnodes.Const)
            and isinstance(item.arg.value, str)
        ):
            refs.add(item.arg.value)
    return refs


def _is_nodes(target: jnodes.Node) -> bool:
    return isinstance(target, jnodes.Name) and target.name == "nodes"


def reference_errors(
    graph: GraphShape,
    outer: frozenset[str] = frozenset(),
    loc: tuple[str | int, ...] = (),
) -> list[InitErrorDetails]:
    """Every ``nodes.X`` that does not name a node upstream of its user (or of the loop
    that contains it, ``outer``), and every template that does not parse."""
    errors: list[InitErrorDetails] = []
    upstream = ancestors(graph)
    for i, node in enumerate(graph.nodes):
        allowed = outer | upstream[node.id]
        where = (*loc, "nodes", i)
        for path, text in _strings(node.config, ("config",)):
            is_expression = node.type is NodeType.CONDITION and path == ("config", "expression")
            refs = expression_node_refs(text) if is_expression else template_node_refs(text)
            if isinstance(refs, str):
                errors.append(_error((*where, *path), "template_syntax", refs))
                continue
            for ref in sorted(refs - allowed):
                reason = "the node itself" if ref == node.id else "not a node upstream of it"
                errors.append(
                    _error(
                        (*where, *path),
                        "unknown_reference",
                        f"nodes.{ref} is {reason} (node {node.id!r} may read only the"
                        " outputs of nodes before it)",
                    )
                )
        if node.body is not None:
            errors.extend(reference_errors(node.body, frozenset(allowed), (*where, "body")))
    return errors


def _strings(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _strings(v, (*path, str(k)))]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _strings(v, (*path, i))]
    return []
