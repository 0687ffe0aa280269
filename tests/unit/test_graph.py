"""Graph validation: structural errors are refused and located at their node or edge."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.models.graph import WorkflowGraph


def node(node_id: str, kind: str = "action", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": node_id, "type": kind, **extra}
    if kind == "action":
        body.setdefault("action", "log_message")
    if kind == "condition":
        body.setdefault("config", {"expression": "true"})
    return body


def edge(source: str, target: str, branch: str | None = None) -> dict[str, Any]:
    return {"from": source, "to": target, **({"branch": branch} if branch else {})}


def errors(graph: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        WorkflowGraph.model_validate(graph)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


def test_the_design_example_is_valid_and_round_trips() -> None:
    graph = {
        "name": "GitHub activity monitor",
        "nodes": [
            {"id": "start", "type": "trigger"},
            {
                "id": "fetch",
                "type": "action",
                "action": "http_request",
                "config": {"method": "GET", "url": "{{ input.base_url }}/events"},
                "retry": {"max_attempts": 3, "backoff_s": 1},
                "timeout_s": 10,
            },
            {
                "id": "ok",
                "type": "condition",
                "config": {"expression": "nodes.fetch.output.status == 200"},
            },
            {
                "id": "log",
                "type": "action",
                "action": "log_message",
                "config": {"message": "{{ nodes.fetch.output.body | length }} events"},
            },
        ],
        "edges": [edge("start", "fetch"), edge("fetch", "ok"), edge("ok", "log", "true")],
    }
    parsed = WorkflowGraph.model_validate(graph)
    dumped = parsed.dump()
    assert dumped["edges"][2] == {"from": "ok", "to": "log", "branch": "true"}
    assert WorkflowGraph.model_validate(dumped) == parsed


def test_a_cycle_is_refused_naming_its_nodes() -> None:
    found = errors(
        {
            "nodes": [node("t", "trigger"), node("a"), node("b"), node("c")],
            "edges": [edge("t", "a"), edge("a", "b"), edge("b", "c"), edge("c", "a")],
        }
    )
    assert "a -> b -> c -> a" in found["edges"]


def test_an_edge_to_an_unknown_node_names_the_edge_end() -> None:
    found = errors(
        {"nodes": [node("t", "trigger"), node("a")], "edges": [edge("t", "a"), edge("a", "ghost")]}
    )
    assert found == {"edges.1.to": "no node with id 'ghost'"}


def test_a_branch_on_an_edge_leaving_a_non_condition_is_refused() -> None:
    found = errors({"nodes": [node("t", "trigger"), node("a")], "edges": [edge("t", "a", "true")]})
    assert "edges.0.branch" in found
    assert "condition" in found["edges.0.branch"]


def test_duplicate_ids_and_triggers_are_located() -> None:
    found = errors({"nodes": [node("t", "trigger"), node("a"), node("a"), node("u", "trigger")]})
    assert "nodes.2.id" in found
    assert "nodes.3.type" in found


def test_a_graph_without_a_trigger_is_refused() -> None:
    assert "nodes" in errors({"nodes": [node("a")]})


def test_node_level_errors_are_located() -> None:
    found = errors(
        {
            "nodes": [
                node("t", "trigger"),
                {"id": "x", "type": "action"},
                {"id": "y", "type": "condition"},
                node("z", action="teleport"),
            ]
        }
    )
    assert set(found) >= {"nodes.1", "nodes.2", "nodes.3.action"}


def test_unknown_fields_are_refused() -> None:
    found = errors({"nodes": [node("t", "trigger", colour="red")]})
    assert "nodes.0.colour" in found


def test_an_error_branch_needs_on_error_route() -> None:
    found = errors(
        {
            "nodes": [node("t", "trigger"), node("a"), node("b")],
            "edges": [edge("t", "a"), edge("a", "b", "error")],
        }
    )
    assert "edges.1.branch" in found
    WorkflowGraph.model_validate(
        {
            "nodes": [node("t", "trigger"), node("a", on_error="route"), node("b")],
            "edges": [edge("t", "a"), edge("a", "b", "error")],
        }
    )
