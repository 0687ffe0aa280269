"""Overlap and pause policies, jitter and pacing: what becomes of each fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduler.decisions import Active, Policies, decide
from services.scheduler.planning import Plan
from shared.jitter import jitter_delay

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ONE = Plan(fires=[NOW])
BUSY = Active(running=1)


IDLE = Active()


def kinds(plan: Plan, policies: Policies, active: Active = IDLE) -> list[str]:
    return [d.kind for d in decide(plan, policies, active, NOW).decisions]


def test_allow_starts_a_run_even_when_one_is_running() -> None:
    assert kinds(ONE, Policies("s"), BUSY) == ["created"]


def test_skip_records_why_nothing_started() -> None:
    (decision,) = decide(ONE, Policies("s", overlap="skip"), BUSY, NOW).decisions
    assert decision.kind == "skipped_overlap"
    assert "still in flight" in decision.reason
    assert kinds(ONE, Policies("s", overlap="skip")) == ["created"]


def test_buffer_one_holds_one_run_and_skips_the_next() -> None:
    two = Plan(fires=[NOW - timedelta(seconds=1), NOW])
    outcome = decide(two, Policies("s", overlap="buffer_one"), BUSY, NOW)
    assert [d.kind for d in outcome.decisions] == ["buffered", "skipped_overlap"]
    assert outcome.decisions[0].held
    assert kinds(ONE, Policies("s", overlap="buffer_one"), Active(running=1, held=1)) == [
        "skipped_overlap"
    ]


def test_cancel_other_cancels_and_starts() -> None:
    outcome = decide(ONE, Policies("s", overlap="cancel_other"), BUSY, NOW)
    assert outcome.cancel_active
    assert [d.kind for d in outcome.decisions] == ["cancelled_other"]
    assert outcome.decisions[0].creates_run


def test_paused_fires_are_recorded_with_the_note() -> None:
    policies = Policies("s", paused_until=NOW + timedelta(hours=1), pause_note="maintenance")
    (decision,) = decide(ONE, policies, Active(), NOW).decisions
    assert decision.kind == "paused"
    assert "maintenance" in decision.reason
    # a pause that has ended does not hold anything back
    ended = Policies("s", paused_until=NOW - timedelta(seconds=1))
    assert kinds(ONE, ended) == ["created"]


def test_missed_fires_are_recorded_with_a_summary_beyond_the_cap() -> None:
    missed = [NOW - timedelta(minutes=m) for m in range(3, 0, -1)]
    plan = Plan(fires=[NOW], missed=10, missed_fires=missed)
    decisions = decide(plan, Policies("s"), Active(), NOW).decisions
    assert [d.kind for d in decisions] == ["missed"] * 4 + ["created"]
    assert any("7 earlier" in d.reason for d in decisions)


def test_jitter_is_deterministic_bounded_and_delays_the_release() -> None:
    delays = {jitter_delay(f"s{i}", NOW, 30) for i in range(50)}
    assert all(timedelta(0) <= d < timedelta(seconds=30) for d in delays)
    assert len(delays) > 40  # spread
    assert jitter_delay("s1", NOW, 30) == jitter_delay("s1", NOW, 30)
    (decision,) = decide(ONE, Policies("s1", jitter_s=30), Active(), NOW).decisions
    assert decision.release_at == NOW + jitter_delay("s1", NOW, 30)


def test_caught_up_runs_are_paced() -> None:
    late = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
    plan = Plan(fires=late, caught_up=3)
    decisions = decide(plan, Policies("s", catchup_interval_s=5), Active(), NOW).decisions
    assert [d.release_at for d in decisions] == [
        None,
        NOW + timedelta(seconds=5),
        NOW + timedelta(seconds=10),
    ]
