"""When a schedule runs next: daily or weekly at a local time in an IANA time zone.

Times are computed in the schedule's zone and returned in UTC. Daylight-saving rules:

* A local time that does not exist (Europe/Berlin 02:30 on the spring-forward day) runs that day
  shifted forward by the length of the gap (03:30 local, the same instant as 02:30 under the old
  offset).
* A local time that happens twice (Europe/Berlin 02:30 on the fall-back day) runs once, at its
  first occurrence (``fold=0``, still summer time).
* Otherwise the wall-clock time is kept: daily 09:00 stays 09:00 local across a change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nano_export.errors import BadInput

Cadence = Literal["daily", "weekly"]
CADENCES: Final[tuple[Cadence, ...]] = ("daily", "weekly")
WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM: Final = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Timing:
    """A validated cadence: daily or weekly (weekday 0 = Monday), at ``at`` local time in ``tz``."""

    cadence: Cadence
    at: time
    tz: ZoneInfo
    weekday: int | None = None

    def describe(self) -> str:
        """One line for people, e.g. ``weekly on mon at 09:00 Europe/Berlin``."""
        when = "daily" if self.weekday is None else f"weekly on {WEEKDAYS[self.weekday]}"
        return f"{when} at {self.at:%H:%M} {self.tz.key}"


def parse_time(text: str) -> time:
    """``HH:MM`` (24-hour) as a time; BadInput otherwise."""
    match = _HHMM.match(text.strip())
    if not match:
        raise BadInput(f"bad time {text!r}: expected HH:MM on a 24-hour clock, e.g. 09:30")
    return time(int(match.group(1)), int(match.group(2)))


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``; BadInput for an unknown one."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


def parse_weekday(text: str) -> int:
    """``mon`` … ``sun`` (any case, full names too) as 0 … 6; BadInput otherwise."""
    key = text.strip().lower()
    for i, short in enumerate(WEEKDAYS):
        if key in (short, _FULL_DAYS[i]):
            return i
    raise BadInput(f"bad weekday {text!r}: choose one of {', '.join(WEEKDAYS)}")


def make_timing(cadence: str, *, at: str, tz: str = "UTC", weekday: str | None = None) -> Timing:
    """A Timing from user input, with a clear BadInput for each mistake."""
    if cadence not in CADENCES:
        raise BadInput(f"bad cadence {cadence!r}: choose daily or weekly")
    when = parse_time(at)
    zone = parse_zone(tz)
    if cadence == "weekly":
        if not weekday:
            raise BadInput("a weekly schedule needs --weekday (mon … sun)")
        return Timing("weekly", when, zone, parse_weekday(weekday))
    if weekday:
        raise BadInput("--weekday only applies to weekly schedules")
    return Timing("daily", when, zone, None)


def local_slot(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of ``at`` on local ``day``, with the DST rules of this module."""
    # fold=0: first occurrence when ambiguous; for a time in a gap, zoneinfo applies the offset in
    # force before the gap, which lands the instant after the gap by exactly the gap's length.
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def next_run(timing: Timing, *, after: datetime) -> datetime:
    """The first run strictly after ``after`` (an aware datetime), in UTC."""
    if after.tzinfo is None:
        raise ValueError("next_run needs an aware datetime")
    start = after.astimezone(timing.tz).date() - timedelta(days=1)
    for offset in range(9):
        day = start + timedelta(days=offset)
        if timing.weekday is not None and day.weekday() != timing.weekday:
            continue
        slot = local_slot(day, timing.at, timing.tz)
        if slot > after:
            return slot
    raise AssertionError("unreachable: a slot exists within eight days")  # pragma: no cover
