"""Graph validation of loops, template references and retry_on, located at the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.executor.backoff import should_retry
from services.executor.errors import ConfigError, StepError
from shared.models.graph import RetryPolicy, WorkflowGraph
from tests.unit.test_graph import edge, errors, node


def log(node_id: str, message: str) -> dict[str, Any]:
    return node(node_id, config={"message": message})


def loop(node_id: str, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "loop",
        "config": {"items": "{{ input.ids }}", **config},
        "body": body,
    }


def body(*nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"nodes": [node("t", "trigger"), *nodes], "edges": edges or []}


def test_a_reference_to_a_node_downstream_or_unknown_is_refused_at_its_field() -> None:
    found = errors(
        {
            "nodes": [
                node("start", "trigger"),
                log("a", "{{ nodes.b.output }}"),
                log("b", "ok"),
                node("c", config={"message": "x", "extra": ["{{ nodes['ghost'].output }}"]}),
            ],
            "edges": [edge("start", "a"), edge("a", "b"), edge("b", "c")],
        }
    )
    assert set(found) == {"nodes.1.config.message", "nodes.3.config.extra.0"}
    assert "nodes.b is not a node upstream" in found["nodes.1.config.message"]


def test_references_upstream_and_on_other_branches_of_a_join_are_accepted() -> None:
    WorkflowGraph.model_validate(
        {
            "nodes": [
                node("start", "trigger"),
                node("ok", "condition", config={"expression": "input.x == 1"}),
                log("yes", "{{ nodes.ok.output.result }}"),
                log("no", "{{ nodes.start.output }}"),
                log("join", "{{ nodes.yes.status }} {{ nodes.no.status }} {{ secrets.K }}"),
            ],
            "edges": [
                edge("start", "ok"),
                edge("ok", "yes", "true"),
                edge("ok", "no", "false"),
                edge("yes", "join"),
                edge("no", "join"),
            ],
        }
    )


def test_a_condition_expression_is_checked_without_braces_and_syntax_errors_are_located() -> None:
    found = errors(
        {
            "nodes": [
                node("start", "trigger"),
                node("ok", "condition", config={"expression": "nodes.later.output == 1"}),
                log("later", "{{ broken ( }}"),
            ],
            "edges": [edge("start", "ok"), edge("ok", "later", "true")],
        }
    )
    assert set(found) == {"nodes.1.config.expression", "nodes.2.config.message"}
    assert "syntax" in found["nodes.2.config.message"]


def test_a_loop_body_is_validated_as_a_graph_and_located_under_the_loop() -> None:
    found = errors(
        {
            "nodes": [
                node("start", "trigger"),
                loop("each", {"nodes": [log("x", "no trigger")], "edges": [edge("x", "y")]}),
            ],
            "edges": [edge("start", "each")],
        }
    )
    assert set(found) == {"nodes.1.body.nodes", "nodes.1.body.edges.0.to"}


def test_a_loop_body_may_read_its_own_upstream_and_the_loops_upstream_only() -> None:
    graph = {
        "nodes": [
            node("start", "trigger"),
            log("before", "x"),
            loop(
                "each",
                body(
                    log(
                        "a", "{{ loop.item }} {{ nodes.t.output.index }} {{ nodes.before.output }}"
                    ),
                    log("b", "{{ nodes.a.output }} {{ nodes.after.output }}"),
                    edges=[edge("t", "a"), edge("a", "b")],
                ),
            ),
            log("after", "{{ nodes.each.output | length }}"),
        ],
        "edges": [edge("start", "before"), edge("before", "each"), edge("each", "after")],
    }
    found = errors(graph)
    assert set(found) == {"nodes.2.body.nodes.2.config.message"}
    assert "nodes.after" in found["nodes.2.body.nodes.2.config.message"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"config": {"items": "[]"}}, "needs a 'body'"),
        ({"config": {}, "body": body()}, "config.items"),
        ({"config": {"items": [], "concurrency": 0}, "body": body()}, "concurrency"),
    ],
)
def test_a_loop_needs_a_body_items_and_a_sane_concurrency(
    extra: dict[str, Any], message: str
) -> None:
    found = errors(
        {
            "nodes": [node("start", "trigger"), {"id": "each", "type": "loop", **extra}],
            "edges": [edge("start", "each")],
        }
    )
    assert any(message in text for text in found.values()), found


def test_only_loops_take_a_body() -> None:
    found = errors({"nodes": [node("start", "trigger", body=body())]})
    assert any("only loop nodes" in text for text in found.values())


def test_retry_on_names_known_failures_only() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(retry_on=["sometimes"])
    policy = RetryPolicy(max_attempts=3, retry_on=["timeout", "http_5xx", "http_429"])
    assert should_retry(policy, TimeoutError())
    assert should_retry(policy, StepError("x", kind="http_503"))
    assert should_retry(policy, StepError("x", kind="http_429"))
    assert not should_retry(policy, StepError("x", kind="http_404"))
    assert not should_retry(policy, StepError("x", kind="connection"))
    assert not should_retry(RetryPolicy(retry_on=["any"]), ConfigError("bad"))
    assert should_retry(RetryPolicy(), StepError("x"))


def test_run_timeout_is_part_of_the_graph() -> None:
    graph = WorkflowGraph.model_validate({"nodes": [node("s", "trigger")], "timeout_s": 5})
    assert graph.timeout_s == 5
    assert graph.dump()["timeout_s"] == 5
