"""Next-run computation: daily and weekly slots in a time zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nano_export.cadence import make_timing, next_run
from nano_export.errors import BadInput


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_daily_slot_later_today_is_chosen_in_the_local_zone() -> None:
    timing = make_timing("daily", at="09:00", tz="Europe/Berlin")
    # 06:00 UTC in January is 07:00 CET: 09:00 CET (08:00 UTC) is still ahead today.
    assert next_run(timing, after=utc(2026, 1, 15, 6, 0)) == utc(2026, 1, 15, 8, 0)


def test_daily_slot_already_passed_moves_to_tomorrow() -> None:
    timing = make_timing("daily", at="09:00", tz="Europe/Berlin")
    assert next_run(timing, after=utc(2026, 1, 15, 8, 0)) == utc(2026, 1, 16, 8, 0)


def test_daily_0900_stays_0900_local_across_spring_forward() -> None:
    timing = make_timing("daily", at="09:00", tz="Europe/Berlin")
    # Berlin springs forward on 2026-03-29 at 02:00 CET → 03:00 CEST.
    before = next_run(timing, after=utc(2026, 3, 28, 9, 0))
    after = next_run(timing, after=before)
    assert before == utc(2026, 3, 29, 7, 0)  # 09:00 CEST
    assert after == utc(2026, 3, 30, 7, 0)
    assert next_run(timing, after=utc(2026, 3, 27, 9, 0)) == utc(2026, 3, 28, 8, 0)  # 09:00 CET


def test_daily_0900_stays_0900_local_across_fall_back() -> None:
    timing = make_timing("daily", at="09:00", tz="Europe/Berlin")
    # Berlin falls back on 2026-10-25 at 03:00 CEST → 02:00 CET.
    assert next_run(timing, after=utc(2026, 10, 24, 8, 0)) == utc(2026, 10, 25, 8, 0)
    assert next_run(timing, after=utc(2026, 10, 23, 8, 0)) == utc(2026, 10, 24, 7, 0)


def test_nonexistent_spring_forward_time_is_shifted_forward_by_the_gap() -> None:
    timing = make_timing("daily", at="02:30", tz="Europe/Berlin")
    slot = next_run(timing, after=utc(2026, 3, 28, 12, 0))
    assert slot == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert slot.astimezone(timing.tz).strftime("%H:%M %Z") == "03:30 CEST"


def test_ambiguous_fall_back_time_runs_once_at_first_occurrence() -> None:
    timing = make_timing("daily", at="02:30", tz="Europe/Berlin")
    first = next_run(timing, after=utc(2026, 10, 24, 12, 0))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET (01:30 UTC)
    # The second occurrence of 02:30 that night is not another run: the next is the day after.
    assert next_run(timing, after=first) == utc(2026, 10, 26, 1, 30)


def test_weekly_runs_on_its_weekday_only() -> None:
    timing = make_timing("weekly", at="07:15", tz="America/New_York", weekday="fri")
    # Wednesday 2026-01-14 noon UTC → Friday 2026-01-16 07:15 EST = 12:15 UTC.
    slot = next_run(timing, after=utc(2026, 1, 14, 12, 0))
    assert slot == utc(2026, 1, 16, 12, 15)
    assert next_run(timing, after=slot) == utc(2026, 1, 23, 12, 15)


def test_weekly_on_the_same_weekday_after_the_time_waits_a_week() -> None:
    timing = make_timing("weekly", at="07:15", tz="UTC", weekday="friday")
    assert next_run(timing, after=utc(2026, 1, 16, 7, 16)) == utc(2026, 1, 23, 7, 15)


def test_local_date_differs_from_utc_date() -> None:
    timing = make_timing("daily", at="08:00", tz="Pacific/Auckland")
    # 2026-01-15 20:00 UTC is already 2026-01-16 09:00 NZDT: next is 2026-01-17 08:00 NZDT.
    assert next_run(timing, after=utc(2026, 1, 15, 20, 0)) == utc(2026, 1, 16, 19, 0)


def test_next_run_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run(make_timing("daily", at="09:00"), after=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cadence": "daily", "at": "24:00"}, "bad time '24:00'"),
        ({"cadence": "daily", "at": "9h"}, "bad time"),
        ({"cadence": "daily", "at": "09:00", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"cadence": "weekly", "at": "09:00"}, "needs --weekday"),
        ({"cadence": "weekly", "at": "09:00", "weekday": "funday"}, "bad weekday"),
        ({"cadence": "daily", "at": "09:00", "weekday": "mon"}, "only applies to weekly"),
        ({"cadence": "hourly", "at": "09:00"}, "bad cadence"),
    ],
)
def test_bad_timing_input_is_refused_with_a_clear_message(
    kwargs: dict[str, str], message: str
) -> None:
    cadence = kwargs.pop("cadence")
    with pytest.raises(BadInput, match=message):
        make_timing(cadence, **kwargs)


def test_describe_names_cadence_time_and_zone() -> None:
    timing = make_timing("weekly", at="9:05", tz="Europe/Berlin", weekday="Mon")
    assert timing.describe() == "weekly on mon at 09:05 Europe/Berlin"
