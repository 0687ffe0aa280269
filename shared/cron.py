"""Cron expressions: validation, description and fire times in an IANA time zone.

Grammar (DESIGN "Cron expressions"): five fields (minute hour day-of-month month
day-of-week), or six with **seconds first**; ``@hourly``-style aliases; croniter's
``L``, ``#`` and ``H`` (hashed from the schedule id so schedules spread out).

Fire times are computed on the wall clock of the schedule's zone and returned as UTC.
Daylight-saving transitions follow Vixie cron's rule:

* a fixed-time job (minute and hour fields both fixed) whose time falls in a skipped
  interval runs once, at the instant the clocks change;
* a fixed-time job whose time falls in a repeated interval runs once, on the first
  occurrence;
* a job whose minute or hour field is a wildcard (``*``, ``*/n``) runs on every
  occurrence of a repeated wall-clock time, and not at all for skipped times.

croniter alone fires ``30 1 * * *`` twice on the night New York falls back; this module
wraps it to apply the rule.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

MAX_PREVIEW = 100
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The widest gap or overlap any IANA zone has had is two hours (Antarctica/Troll).
_DST_MARGIN = timedelta(hours=3)
_FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_MAX_CANDIDATES = 100_000


class CronError(ValueError):
    """An expression or time zone that cannot be used; the message says why."""


def _normalise(expression: str) -> tuple[str, list[str]]:
    text = " ".join(expression.split())
    if not text:
        raise CronError("the expression is empty")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise CronError(f"unknown alias {text!r}; use one of {', '.join(sorted(ALIASES))}")
        text = ALIASES[text.lower()]
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise CronError(
            f"expected 5 fields (minute hour day month weekday) or 6 with seconds first, "
            f"got {len(fields)}"
        )
    return text, fields


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``. Raises CronError for an unknown name."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Paris"
        ) from None


def all_zones() -> list[str]:
    return sorted(available_timezones())


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression in a zone. Build it with :func:`parse`."""

    expression: str
    timezone: str
    hash_id: str | None = None

    @cached_property
    def _normal(self) -> tuple[str, list[str]]:
        return _normalise(self.expression)

    @property
    def has_seconds(self) -> bool:
        return len(self._normal[1]) == 6

    @cached_property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @cached_property
    def repeats_in_overlap(self) -> bool:
        """True when the minute or hour field is a wildcard (Vixie's rule)."""
        fields = self._normal[1][1:3] if self.has_seconds else self._normal[1][0:2]
        return any(f == "*" or f.startswith("*/") for f in fields)

    def _iterator(self, local_start: datetime) -> croniter:
        # Expanding an expression is most of croniter's cost: expand once per
        # (expression, hash id) and copy the prototype for each new start.
        text = self._normal[0]
        hash_id = self.hash_id if "H" in text else None  # only H reads the hash id
        iterator = copy.copy(_prototype(text, hash_id, self.has_seconds))
        iterator.set_current(local_start, force=True)
        return iterator

    def validate(self) -> None:
        """Raise CronError if the expression or the zone is not usable."""
        _ = self.tz
        try:
            self._iterator(datetime(2000, 1, 1)).get_next(datetime)
        except (CroniterError, ValueError, KeyError, TypeError) as exc:
            raise CronError(self._explain(exc)) from None

    def _explain(self, exc: Exception) -> str:
        """Name the first field that is wrong on its own, else croniter's message."""
        fields = self._normal[1]
        names = _FIELD_NAMES[6 - len(fields) :]
        for i, value in enumerate(fields):
            probe = ["*"] * len(fields)
            probe[i] = value
            try:
                croniter(
                    " ".join(probe),
                    datetime(2000, 1, 1),
                    hash_id=self.hash_id or "x",
                    second_at_beginning=self.has_seconds,
                ).get_next(datetime)
            except (CroniterError, ValueError, KeyError, TypeError):
                return f"the {names[i]} field {value!r} is not valid"
        return "invalid expression: " + str(exc).replace("[" + self._normal[0] + "] ", "")

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; None if none."""
        text = self._normal[0]
        # Many schedules share an expression and fire together: memoise the answer.
        hash_id = self.hash_id if "H" in text else None
        return _next_after(text, hash_id, self.timezone, after.astimezone(UTC))

    def next_n(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after``, in UTC."""
        out: list[datetime] = []
        for fire in self.iter_after(after):
            out.append(fire)
            if len(out) >= count:
                break
        return out

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after`` (aware), ascending, in UTC, forever."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        after = after.astimezone(UTC)
        tz = self.tz
        # Near a transition, a repeated wall-clock time earlier than after's may still
        # have a second occurrence ahead: start early enough to see it.
        near = tz.utcoffset(after - _DST_MARGIN) != tz.utcoffset(after + _DST_MARGIN)
        local_start = after.astimezone(tz).replace(tzinfo=None)
        if near:
            local_start -= _DST_MARGIN
        iterator = self._iterator(local_start)
        pending: list[datetime] = []  # candidates not yet known to be the smallest
        last_emitted: datetime | None = None
        for _ in range(_MAX_CANDIDATES):
            try:
                local = iterator.get_next(datetime)
            except CroniterError:
                break  # no further match (e.g. 30 February)
            # A later wall-clock time is never more than the margin earlier in UTC.
            floor = local.replace(tzinfo=UTC) - _offset_bound(tz, local)
            pending.extend(self._instants(local))
            pending.sort()
            while pending and pending[0] <= floor:
                fire = pending.pop(0)
                if fire > after and fire != last_emitted:
                    last_emitted = fire
                    yield fire
        for fire in pending:
            if fire > after and fire != last_emitted:
                last_emitted = fire
                yield fire

    def _instants(self, local: datetime) -> list[datetime]:
        """The UTC instants at which wall-clock time ``local`` fires, by Vixie's rule."""
        tz = self.tz
        first = local.replace(tzinfo=tz, fold=0)
        second = local.replace(tzinfo=tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        early, late = sorted((first.astimezone(UTC), second.astimezone(UTC)))
        round_trip = early.astimezone(tz).replace(tzinfo=None)
        if round_trip != local:
            # A skipped time: fixed-time jobs run once at the change, wildcards not at all.
            if self.repeats_in_overlap:
                return []
            return [_transition_between(tz, early, late)]
        # A repeated time: wildcards on each occurrence, fixed-time jobs on the first.
        return [early, late] if self.repeats_in_overlap else [early]


@lru_cache(maxsize=65536)
def _next_after(text: str, hash_id: str | None, timezone: str, after: datetime) -> datetime | None:
    return next(CronSchedule(text, timezone, hash_id).iter_after(after), None)


@lru_cache(maxsize=8192)
def _prototype(text: str, hash_id: str | None, seconds: bool) -> croniter:
    return croniter(text, datetime(2000, 1, 1), hash_id=hash_id, second_at_beginning=seconds)


def _offset_bound(tz: ZoneInfo, local: datetime) -> timedelta:
    """An offset larger than any the zone has near ``local``: UTC = local - offset."""
    offsets = [
        (local + delta).replace(tzinfo=tz, fold=fold).utcoffset() or timedelta(0)
        for delta in (-_DST_MARGIN, timedelta(0), _DST_MARGIN)
        for fold in (0, 1)
    ]
    return max(offsets) + (max(offsets) - min(offsets))


def _transition_between(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant in [low, high] at which the zone's offset changes, to the second."""
    before = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def parse(expression: str, timezone: str = "UTC", *, hash_id: str | None = None) -> CronSchedule:
    """Parse and validate. Raises CronError with a message naming the problem."""
    schedule = CronSchedule(expression.strip(), timezone, hash_id)
    schedule.validate()
    return schedule


def describe(expression: str) -> str:
    """A sentence describing the expression, in English (cron-descriptor)."""
    from cron_descriptor import Options, get_description

    text, _ = _normalise(expression)
    options = Options()
    options.use_24hour_time_format = True
    # cron-descriptor reads six fields as seconds first, as Flowcron does.
    try:
        return str(get_description(text, options))
    except Exception:  # noqa: BLE001  # the description is a courtesy; never fail on it
        return text
