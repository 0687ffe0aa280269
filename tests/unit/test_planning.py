"""What a due schedule fires: on-time fires, catch-up policies, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduler.planning import DueSchedule, plan

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def minutely(**kw: object) -> DueSchedule:
    base: dict[str, object] = {"id": "s1", "cron": "* * * * *", "timezone": "UTC"}
    base.update(kw)
    return DueSchedule(**base)  # type: ignore[arg-type]


def test_an_on_time_fire_runs_and_the_next_is_after_now() -> None:
    decided = plan(minutely(next_run_at=NOW), NOW + timedelta(milliseconds=3))
    assert decided.fires == [NOW]
    assert decided.next_run_at == NOW + timedelta(minutes=1)
    assert decided.missed == 0


def hourly_after_outage(policy: str, **kw: object) -> DueSchedule:
    # Down from 08:30 to 12:10: the 09:00, 10:00, 11:00 and 12:00 fires are all late.
    return minutely(
        cron="0 * * * *",
        next_run_at=NOW - timedelta(hours=3),
        catchup_policy=policy,
        catchup_window_s=4 * 3600,
        **kw,
    )


AFTER_OUTAGE = NOW + timedelta(minutes=10)


def test_latest_runs_only_the_most_recent_missed_fire() -> None:
    decided = plan(hourly_after_outage("latest"), AFTER_OUTAGE)
    assert decided.fires == [NOW]
    assert decided.missed == 3
    assert decided.next_run_at == NOW + timedelta(hours=1)


def test_skip_runs_none_of_the_missed_fires() -> None:
    decided = plan(hourly_after_outage("skip"), AFTER_OUTAGE)
    assert decided.fires == []
    assert decided.missed == 4
    assert decided.next_run_at == NOW + timedelta(hours=1)


def test_all_runs_each_missed_fire_up_to_the_limit() -> None:
    decided = plan(hourly_after_outage("all", max_catchup_runs=2), AFTER_OUTAGE)
    assert decided.fires == [NOW - timedelta(hours=1), NOW]
    assert decided.missed == 2


def test_the_catchup_window_bounds_what_is_caught_up() -> None:
    schedule = hourly_after_outage("all", max_catchup_runs=10)
    narrow = DueSchedule(**{**schedule.__dict__, "catchup_window_s": 3600})
    assert plan(narrow, AFTER_OUTAGE).fires == [NOW]


def test_an_on_time_fire_is_not_subject_to_the_policy() -> None:
    schedule = minutely(next_run_at=NOW - timedelta(minutes=10), catchup_policy="skip")
    decided = plan(schedule, NOW + timedelta(seconds=30))
    assert decided.fires == [NOW]
    assert decided.missed == 10


def test_fires_older_than_the_window_are_dropped_without_scanning_them() -> None:
    schedule = DueSchedule(
        id="s1",
        cron="* * * * * *",
        timezone="UTC",
        next_run_at=NOW - timedelta(days=30),
        catchup_policy="all",
        catchup_window_s=5,
        max_catchup_runs=100,
    )
    decided = plan(schedule, NOW)
    assert decided.fires[-1] == NOW
    assert all(NOW - f <= timedelta(seconds=65) for f in decided.fires)
    assert decided.next_run_at == NOW + timedelta(seconds=1)


def test_max_runs_stops_the_schedule() -> None:
    decided = plan(minutely(next_run_at=NOW, max_runs=3, total_runs=2), NOW)
    assert decided.fires == [NOW]
    assert decided.next_run_at is None


def test_end_at_stops_the_schedule() -> None:
    decided = plan(minutely(next_run_at=NOW, end_at=NOW + timedelta(seconds=30)), NOW)
    assert decided.fires == [NOW]
    assert decided.next_run_at is None


def test_a_broken_expression_stops_firing_with_an_error() -> None:
    decided = plan(minutely(next_run_at=NOW, cron="61 * * * *"), NOW)
    assert decided.fires == []
    assert decided.next_run_at is None
    assert decided.error
