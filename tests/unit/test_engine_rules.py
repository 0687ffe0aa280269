"""The join rule, retry backoff and the start-rate limiter, as pure functions."""

from __future__ import annotations

import random

from services.executor.backoff import retry_delay
from services.executor.joins import Outcome, edge_state, incoming_edges, readiness, run_output
from services.executor.ratelimit import RateLimiter
from shared.models.graph import Edge, RetryPolicy, WorkflowGraph

GRAPH = WorkflowGraph.model_validate(
    {
        "nodes": [
            {"id": "start", "type": "trigger"},
            {"id": "ok", "type": "condition", "config": {"expression": "true"}},
            {"id": "yes", "type": "transform", "config": {"value": 1}},
            {"id": "no", "type": "transform", "config": {"value": 2}},
            {"id": "join", "type": "transform", "config": {"value": 3}},
            {"id": "risky", "type": "action", "action": "delay", "on_error": "route"},
            {"id": "handler", "type": "transform", "config": {"value": 4}},
            {"id": "orphan", "type": "transform", "config": {"value": 5}},
        ],
        "edges": [
            {"from": "start", "to": "ok"},
            {"from": "ok", "to": "yes", "branch": "true"},
            {"from": "ok", "to": "no", "branch": "false"},
            {"from": "yes", "to": "join"},
            {"from": "no", "to": "join"},
            {"from": "start", "to": "risky"},
            {"from": "risky", "to": "handler", "branch": "error"},
        ],
    }
)
IN = incoming_edges(GRAPH)
OK = Outcome("succeeded", {})


def edge(source: str, target: str) -> Edge:
    return next(e for e in GRAPH.edges if e.source == source and e.target == target)


def test_edges_follow_the_condition_result() -> None:
    true = Outcome("succeeded", {"result": True})
    assert edge_state(edge("ok", "yes"), true) == "live"
    assert edge_state(edge("ok", "no"), true) == "dead"
    assert edge_state(edge("ok", "no"), Outcome("succeeded", {"result": False})) == "live"
    assert edge_state(edge("ok", "yes"), None) == "pending"


def test_error_edges_are_live_only_when_the_source_failed_and_routed() -> None:
    assert edge_state(edge("risky", "handler"), Outcome("failed", routed=True)) == "live"
    assert edge_state(edge("risky", "handler"), OK) == "dead"
    assert edge_state(edge("start", "risky"), Outcome("failed", routed=True)) == "dead"
    assert edge_state(edge("start", "risky"), Outcome("skipped")) == "dead"


def test_a_join_waits_for_every_edge_and_runs_when_one_is_live() -> None:
    join = GRAPH.node("join")
    assert readiness(join, IN["join"], {"yes": OK}) == "wait"
    assert readiness(join, IN["join"], {"yes": OK, "no": Outcome("skipped")}) == "run"
    skipped = {"yes": Outcome("skipped"), "no": Outcome("skipped")}
    assert readiness(join, IN["join"], skipped) == "skip"


def test_the_trigger_runs_and_unreachable_nodes_are_skipped() -> None:
    assert readiness(GRAPH.node("start"), IN["start"], {}) == "run"
    assert readiness(GRAPH.node("orphan"), IN["orphan"], {}) == "skip"


def test_run_output_holds_succeeded_leaves_only() -> None:
    outcomes = {
        "join": Outcome("succeeded", 3),
        "handler": Outcome("skipped"),
        "yes": Outcome("succeeded", 1),
    }
    assert run_output(GRAPH, outcomes) == {"join": 3}


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=1, max_backoff_s=3)
    rng = random.Random(7)
    for failures, base in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)]:
        delay = retry_delay(policy, failures, rng)
        assert base / 2 <= delay <= base


def test_rate_limiter_allows_a_burst_then_paces() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.available(10) == 2
    limiter.take(2)
    assert limiter.available(10) == 0
    assert limiter.wait_s() == 0.5
    now[0] = 0.5
    assert limiter.available(10) == 1
    assert RateLimiter(0).available(7) == 7
