"""Date presets in the sidebar: last 24 hours, 7, 30 or 90 days, as UTC instants in the link."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dashboard_app import Dash, make_dash
from streamlit.testing.v1 import AppTest

from nano_export.ui import sidebar

#: The clock of these tests: the eight test executions start on Aug 1 … Aug 8 2025 at 12:00 UTC.
NOW = datetime(2025, 8, 9, 0, 0, 30, tzinfo=UTC)


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    monkeypatch.setattr(sidebar, "utc_now", lambda: NOW)
    return make_dash(tmp_path, monkeypatch)


def _link(at: AppTest) -> dict[str, str]:
    return {k: at.query_params[k] for k in at.query_params}


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def test_presets_are_offered_by_the_dates(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    assert at.pills(key=sidebar.K_PRESET).options == ["24 hours", "7 days", "30 days", "90 days"]
    assert at.pills(key=sidebar.K_PRESET).value is None


def test_last_24_hours_sets_since_to_an_instant_in_utc_and_the_link(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.pills(key=sidebar.K_PRESET).set_value("24 hours").run()
    assert not at.exception
    assert at.date_input(key=sidebar.K_SINCE).value == date(2025, 8, 8)
    assert at.date_input(key=sidebar.K_UNTIL).value is None
    # the instant, to the minute, stated in UTC; the link carries it too
    assert any("2025-08-08 00:00 UTC" in c for c in _captions(at)), _captions(at)
    assert _link(at)["since"] == "2025-08-08T00:00:00+00:00"
    assert at.metric[0].value == "1"  # only Aug 8 12:00


def test_last_7_days_clears_until_and_counts_the_week(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.date_input(key=sidebar.K_UNTIL).set_value(date(2025, 8, 3)).run()
    assert at.metric[0].value == "3"
    at.pills(key=sidebar.K_PRESET).set_value("7 days").run()
    assert at.date_input(key=sidebar.K_UNTIL).value is None
    assert "until" not in _link(at)
    assert _link(at)["since"] == "2025-08-02T00:00:00+00:00"
    assert at.metric[0].value == "7"  # Aug 2 … Aug 8


def test_editing_a_date_after_a_preset_drops_the_preset_and_its_time(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.pills(key=sidebar.K_PRESET).set_value("24 hours").run()
    at.date_input(key=sidebar.K_SINCE).set_value(date(2025, 8, 6)).run()
    assert at.pills(key=sidebar.K_PRESET).value is None
    assert _link(at)["since"] == "2025-08-06"
    assert not any("UTC" in c and "from" in c.lower() for c in _captions(at)), _captions(at)
    assert at.metric[0].value == "3"  # Aug 6, 7, 8


def test_unselecting_the_preset_clears_since(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.pills(key=sidebar.K_PRESET).set_value("90 days").run()
    assert at.metric[0].value == "8"
    at.pills(key=sidebar.K_PRESET).set_value(None).run()
    assert at.date_input(key=sidebar.K_SINCE).value is None
    assert "since" not in _link(at)


def test_a_link_with_a_time_keeps_the_time(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["since"] = "2025-08-07T13:00:00Z"
    at.run()
    assert not at.exception
    assert at.date_input(key=sidebar.K_SINCE).value == date(2025, 8, 7)
    assert any("2025-08-07 13:00 UTC" in c for c in _captions(at)), _captions(at)
    # Aug 7 12:00 is before 13:00: cutting the time off would count it too
    assert at.metric[0].value == "1"
    # a page switch keeps it
    at.switch_page("app_pages/export.py").run()
    at.switch_page("app_pages/explore.py").run()
    assert at.metric[0].value == "1"


def test_a_preset_survives_a_page_switch(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.pills(key=sidebar.K_PRESET).set_value("7 days").run()
    at.switch_page("app_pages/export.py").run()
    assert not at.exception
    assert at.pills(key=sidebar.K_PRESET).value == "7 days"
    assert at.date_input(key=sidebar.K_SINCE).value == date(2025, 8, 2)
