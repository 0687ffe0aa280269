"""Cron parsing, fire times in IANA zones, and Vixie cron's daylight-saving rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.cron import MAX_PREVIEW, CronError, describe, parse


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def iso(fires: list[datetime]) -> list[str]:
    return [f.strftime("%m-%d %H:%M:%S") for f in fires]


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",
        "0 9 * * 1-5",
        "*/10 * * * * *",
        "@hourly",
        "@daily",
        "0 0 L * *",
        "0 0 * * 1#2",
        "H 3 * * *",
        "0   12  *  *  *",
    ],
)
def test_valid_expressions_parse(expression: str) -> None:
    parse(expression, "UTC", hash_id="schedule-1")


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "empty"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * * *", "expected 5 fields"),
        ("61 * * * *", "minute field '61'"),
        ("0 0 32 * *", "day-of-month field '32'"),
        ("0 0 0 1 13 *", "month field '13'"),
        ("@fortnightly", "unknown alias"),
        ("a b c d e", "minute field 'a'"),
    ],
)
def test_invalid_expressions_say_why(expression: str, fragment: str) -> None:
    with pytest.raises(CronError, match=fragment):
        parse(expression, "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "", "utc+1"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(CronError, match="time zone"):
        parse("* * * * *", zone)


def test_five_fields_next_fires_in_a_zone_are_utc() -> None:
    fires = parse("0 9 * * 1-5", "Europe/Paris").next_n(utc(2026, 6, 5, 12), 3)
    # Friday 5 June after 12:00Z: Monday and Tuesday 09:00 CEST = 07:00Z.
    assert iso(fires) == ["06-08 07:00:00", "06-09 07:00:00", "06-10 07:00:00"]
    assert all(f.tzinfo is UTC for f in fires)


def test_six_fields_put_seconds_first() -> None:
    fires = parse("*/20 * * * * *", "UTC").next_n(utc(2026, 1, 1, 0, 0, 5), 3)
    assert iso(fires) == ["01-01 00:00:20", "01-01 00:00:40", "01-01 00:01:00"]


def test_next_is_strictly_after_the_start() -> None:
    assert parse("0 * * * *").next_after(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)


def test_h_is_stable_per_schedule_and_spreads_schedules() -> None:
    fires = [parse("H * * * *", hash_id=f"s{i}").next_after(utc(2026, 1, 1)) for i in range(20)]
    minute = {f.minute for f in fires if f is not None}
    assert len(minute) > 5
    first = parse("H * * * *", hash_id="s1").next_after(utc(2026, 1, 1))
    again = parse("H * * * *", hash_id="s1").next_after(utc(2026, 1, 1))
    assert first == again


def test_last_day_of_month() -> None:
    fires = parse("0 0 L * *").next_n(utc(2026, 1, 15), 3)
    assert iso(fires) == ["01-31 00:00:00", "02-28 00:00:00", "03-31 00:00:00"]


# --- Daylight saving, by Vixie cron's rule (DESIGN "Cron expressions") -------------------


def test_fixed_time_in_the_repeated_hour_runs_once_new_york() -> None:
    # 1 November 2026: New York falls back at 02:00 EDT to 01:00 EST.
    fires = parse("30 1 * * *", "America/New_York").next_n(utc(2026, 10, 31, 12), 3)
    assert iso(fires) == ["11-01 05:30:00", "11-02 06:30:00", "11-03 06:30:00"]


def test_wildcard_runs_on_each_occurrence_of_the_repeated_hour_new_york() -> None:
    fires = parse("*/30 * * * *", "America/New_York").next_n(utc(2026, 11, 1, 4, 10), 6)
    # 00:30 EDT, 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST
    assert iso(fires) == [
        "11-01 04:30:00",
        "11-01 05:00:00",
        "11-01 05:30:00",
        "11-01 06:00:00",
        "11-01 06:30:00",
        "11-01 07:00:00",
    ]


def test_fixed_time_in_the_skipped_hour_runs_at_the_change_new_york() -> None:
    # 8 March 2026: 02:00 EST jumps to 03:00 EDT (07:00Z); 02:30 does not exist.
    fires = parse("30 2 * * *", "America/New_York").next_n(utc(2026, 3, 7, 12), 2)
    assert iso(fires) == ["03-08 07:00:00", "03-09 06:30:00"]


def test_wildcard_skips_the_skipped_hour_new_york() -> None:
    fires = parse("30 * * * *", "America/New_York").next_n(utc(2026, 3, 8, 5, 45), 3)
    # 01:30 EST (06:30Z), then 03:30 EDT (07:30Z): 02:30 never happened.
    assert iso(fires) == ["03-08 06:30:00", "03-08 07:30:00", "03-08 08:30:00"]


def test_london_both_directions() -> None:
    spring = parse("30 1 * * *", "Europe/London").next_n(utc(2026, 3, 28, 12), 2)
    assert iso(spring) == ["03-29 01:00:00", "03-30 00:30:00"]  # 01:30 skipped: run at 01:00Z
    autumn = parse("30 1 * * *", "Europe/London").next_n(utc(2026, 10, 24, 12), 2)
    assert iso(autumn) == ["10-25 00:30:00", "10-26 01:30:00"]  # first 01:30 (BST) only


def test_lord_howe_thirty_minute_shift_both_directions() -> None:
    # Lord Howe springs forward 02:00 → 02:30 (+10:30 → +11) on 4 October 2026
    spring = parse("15 2 * * *", "Australia/Lord_Howe").next_n(utc(2026, 10, 3, 12), 2)
    assert iso(spring) == ["10-03 15:30:00", "10-04 15:15:00"]
    # and falls back 02:00 → 01:30 (+11 → +10:30) on 5 April 2026: 01:45 happens twice.
    fixed = parse("45 1 * * *", "Australia/Lord_Howe").next_n(utc(2026, 4, 4, 12), 2)
    assert iso(fixed) == ["04-04 14:45:00", "04-05 15:15:00"]
    every = parse("*/15 * * * *", "Australia/Lord_Howe").next_n(utc(2026, 4, 4, 14, 20), 4)
    # 01:30 (+11), 01:45 (+11), 01:30 (+10:30), 01:45 (+10:30)
    assert iso(every) == ["04-04 14:30:00", "04-04 14:45:00", "04-04 15:00:00", "04-04 15:15:00"]


def test_preview_limit_is_published() -> None:
    assert MAX_PREVIEW >= 10


def test_descriptions_are_human() -> None:
    assert describe("*/5 * * * *") == "Every 5 minutes"
    assert "second" in describe("*/10 * * * * *").lower()
    assert describe("@hourly") == "Every hour"
