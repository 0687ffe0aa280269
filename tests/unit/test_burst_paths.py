"""The scheduler's burst shortcuts give what the general path gives.

Shared plans for alike schedules, plain fires written without :func:`decide`, ids
made in bulk and run messages built without validation: each is checked against the
path it stands in for.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncpg.pgproto import pgproto

from services.scheduler.decisions import Active, decide
from services.scheduler.planning import Plan, plan
from services.scheduler.ticker import _Batch, _due, _plain, _plans, _policies
from shared.ids import random_uuids, uuid_stream
from shared.models.messages import RunMessage, RunPointer

NOW = datetime(2026, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)
DUE = NOW.replace(microsecond=0)


def row(**changes: Any) -> Any:
    """A claimed schedule as CLAIM_DUE returns it: a dict, read as the Record would be."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": uuid.uuid4(),
        "workflow_id": uuid.uuid4(),
        "workflow_version": 3,
        "cron": "* * * * *",
        "timezone": "UTC",
        "next_run_at": DUE,
        "input": '{"x": 1}',
        "catchup_policy": "latest",
        "catchup_window_s": 3600,
        "max_catchup_runs": 10,
        "catchup_interval_s": 1.0,
        "end_at": None,
        "max_runs": None,
        "total_runs": 0,
        "overlap_policy": "allow",
        "jitter_s": 0,
        "paused_until": None,
        "pause_note": "",
        "auto_pause_after": None,
        "consecutive_failures": 0,
    }
    values.update(changes)
    return values


def test_alike_schedules_share_one_plan_and_hashed_ones_do_not() -> None:
    alike = [row(), row(), row()]
    hashed = [row(cron="H H * * *", next_run_at=DUE - timedelta(days=1)) for _ in range(20)]
    later = row(next_run_at=DUE + timedelta(seconds=30))

    plans = _plans([*alike, *hashed, later], NOW)

    assert plans[alike[0]["id"]] is plans[alike[1]["id"]] is plans[alike[2]["id"]]
    assert plans[later["id"]] is not plans[alike[0]["id"]]
    for r in [*alike, *hashed, later]:  # each the plan its own schedule would get
        assert plans[r["id"]] == plan(_due(r), NOW)
    # H fields hash the schedule id: twenty schedules do not all land on one time.
    assert len({plans[r["id"]].next_run_at for r in hashed}) > 1


@pytest.mark.parametrize(
    ("changes", "plain"),
    [
        ({}, True),
        ({"next_run_at": DUE - timedelta(minutes=5)}, False),  # missed fires
        ({"catchup_policy": "all", "next_run_at": DUE - timedelta(minutes=5)}, False),
        ({"overlap_policy": "skip"}, False),
        ({"jitter_s": 30}, False),
        ({"paused_until": NOW + timedelta(hours=1)}, False),
        ({"paused_until": NOW - timedelta(hours=1)}, True),  # a pause that has ended
        ({"max_runs": 5, "total_runs": 4}, True),
    ],
)
def test_a_plain_fire_is_written_as_decide_would_write_it(
    changes: dict[str, Any], plain: bool
) -> None:
    schedule = row(**changes)
    planned = plan(_due(schedule), NOW)
    assert _plain(schedule, planned, NOW, paused=False) is plain
    if not plain:
        return
    shortcut, general = _Batch(), _Batch()
    shortcut.add_plain(schedule, planned)
    outcome = decide(planned, _policies(schedule, paused=False), Active(), NOW)
    general.add(schedule, planned, outcome)

    assert not shortcut.decisions and not general.decisions and not general.cancel
    for key in ("org", "wf", "ver", "sch", "at", "in", "release", "held"):
        assert shortcut.runs[key] == general.runs[key], key
    assert shortcut.advance == general.advance
    assert shortcut.publish_now == general.publish_now == [True] * len(planned.fires)


def test_an_auto_paused_schedule_is_never_plain() -> None:
    schedule = row()
    assert not _plain(schedule, plan(_due(schedule), NOW), NOW, paused=True)


def test_plans_with_missed_fires_are_not_plain() -> None:
    missed = Plan(fires=[DUE], missed=1, missed_fires=[DUE - timedelta(minutes=1)])
    assert not _plain(row(), missed, NOW, paused=False)


def test_bulk_ids_are_random_version_4_uuids() -> None:
    ids = random_uuids(5000)
    assert len(set(ids)) == 5000
    for value in ids[:50]:
        assert isinstance(value, uuid.UUID)
        assert value.version == 4 and value.variant == uuid.RFC_4122
        assert uuid.UUID(str(value)) == value
    stream = uuid_stream(chunk=3)
    assert len({next(stream) for _ in range(10)}) == 10  # across chunk boundaries


@pytest.mark.parametrize("scheduled", [True, False])
def test_a_run_pointer_is_the_same_message_as_a_run_message(scheduled: bool) -> None:
    org, workflow, schedule = (pgproto.UUID(str(uuid.uuid4())) for _ in range(3))
    pointer = RunPointer(
        random_uuids(1)[0],
        org,  # as asyncpg returns them
        workflow,
        7,
        "schedule" if scheduled else "manual",
        schedule if scheduled else None,
        NOW if scheduled else None,
    )
    message = RunMessage.model_validate(pointer._asdict())

    assert pointer.to_bytes() == message.to_bytes()
    assert RunMessage.model_validate_json(pointer.to_bytes()) == message
