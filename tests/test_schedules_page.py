"""The Schedules page: create from the form or the Export page's spec, pause, run, remove, scope."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dashboard_app import Dash, make_dash
from streamlit.testing.v1 import AppTest

from nano_export.cadence import make_timing
from nano_export.db import get_engine, utcnow
from nano_export.models import ExportRequest, FilterSpec
from nano_export.schedules import create_schedule, get_schedule, list_schedules

PAGE = "app_pages/schedules.py"


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    return make_dash(tmp_path, monkeypatch)


def on_page(dash: Dash, user: str) -> AppTest:
    at = dash.logged_in(user).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def add(dash: Dash, name: str, owner: str) -> None:
    create_schedule(
        get_engine(dash.settings.db_url),
        dash.settings,
        name=name,
        owner=owner,
        request=ExportRequest(dataset="performance-metrics", privacy="public"),
        timing=make_timing("daily", at="08:00"),
        recipients=[f"{owner}@example.org"],
        interface="cli",
        now=utcnow() - timedelta(days=1),
    )


def test_page_needs_a_login(dash: Dash) -> None:
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / PAGE), default_timeout=30)
    at.run()
    assert [w.value for w in at.warning] == ["Please log in first."]
    assert not at.dataframe


def test_create_from_the_form_then_pause_and_remove(dash: Dash) -> None:
    at = on_page(dash, "anna")
    assert any("No schedules yet" in i.value for i in at.info)
    at.text_input(key="nx_sched_name").input("weekly perf")
    at.selectbox(key="nx_sched_dataset").select("performance-metrics")
    at.radio(key="nx_sched_every").set_value("weekly")
    at.selectbox(key="nx_sched_weekday").select("tue")
    at.text_input(key="nx_sched_at").input("07:45")
    at.text_input(key="nx_sched_tz").input("Europe/Berlin")
    at.text_area(key="nx_sched_emails").input("a@example.org\nb@example.org")
    at.button(key="nx_sched_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    sched = get_schedule(get_engine(dash.settings.db_url), name="weekly perf")
    assert (sched.owner, sched.weekday, sched.at, sched.timezone) == (
        "anna", 1, "07:45", "Europe/Berlin",
    )  # fmt: skip
    assert sched.recipients == ["a@example.org", "b@example.org"]

    at.button(key="nx_sched_pause").click().run()
    assert get_schedule(get_engine(dash.settings.db_url), name="weekly perf").paused
    at.button(key="nx_sched_remove").click().run()
    assert list_schedules(get_engine(dash.settings.db_url)) == []


def test_bad_input_is_shown_as_an_error_not_a_traceback(dash: Dash) -> None:
    at = on_page(dash, "anna")
    at.text_input(key="nx_sched_name").input("bad")
    at.text_input(key="nx_sched_at").input("8 o'clock")
    at.text_area(key="nx_sched_emails").input("a@example.org")
    at.button(key="nx_sched_create").click().run()
    assert not at.exception
    assert any("bad time" in e.value for e in at.error)
    assert list_schedules(get_engine(dash.settings.db_url)) == []


def test_create_from_the_export_pages_spec(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.session_state["export_request"] = ExportRequest(
        dataset="evaluation-results", filters=FilterSpec(provider=("openai",)), format="csv.gz"
    )
    at.run()
    at.switch_page(PAGE).run()
    at.text_input(key="nx_sched_name").input("from export")
    at.text_area(key="nx_sched_emails").input("a@example.org")
    at.button(key="nx_sched_create").click().run()
    assert not at.exception and not at.error
    sched = get_schedule(get_engine(dash.settings.db_url), name="from export")
    assert sched.request.filters.provider == ("openai",)
    assert sched.request.format == "csv.gz"


def test_users_see_their_own_schedules_and_admins_all(dash: Dash) -> None:
    add(dash, "anna-daily", "anna")
    add(dash, "vera-daily", "vera")
    anna = on_page(dash, "anna")
    assert list(anna.dataframe[0].value["name"]) == ["anna-daily"]
    adam = on_page(dash, "adam")
    assert list(adam.dataframe[0].value["name"]) == ["anna-daily", "vera-daily"]


def test_run_now_exports_and_reports_the_outcome(dash: Dash) -> None:
    add(dash, "anna-daily", "anna")
    at = on_page(dash, "anna")
    at.button(key="nx_sched_run").click().run()
    assert not at.exception and not at.error
    assert any("rows; email disabled" in s.value for s in at.success)
    assert get_schedule(get_engine(dash.settings.db_url), name="anna-daily").last_export_id


def test_title_has_no_emoji_like_the_other_pages(dash: Dash) -> None:
    at = on_page(dash, "anna")
    assert [t.value for t in at.title] == ["Schedules"]


def test_invalid_sidebar_filter_explains_the_missing_export_setup(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["where"] = "cost_usd >> 1"
    at.run()
    at.switch_page("app_pages/export.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    toggle = at.toggle(key="nx_sched_use")
    assert toggle.disabled and not toggle.value
    assert any("filter" in c.value for c in at.caption), [c.value for c in at.caption]
    assert at.selectbox(key="nx_sched_dataset").value == "evaluation-results"
    assert at.radio(key="nx_sched_privacy").value == "standard"


def test_without_mail_settings_the_page_says_nobody_is_emailed(dash: Dash) -> None:
    at = on_page(dash, "anna")
    assert any("Email is not set up" in w.value for w in at.warning)
    assert any("does not run schedules itself" in i.value for i in at.info)


def test_an_overdue_schedule_says_no_scheduler_runs(dash: Dash) -> None:
    add(dash, "late one", "anna")
    schedules_now = list_schedules(get_engine(dash.settings.db_url))
    assert schedules_now[0].next_run_at < utcnow()  # created a day ago: due since
    at = on_page(dash, "anna")
    assert any(
        "No scheduler seems to be running" in w.value and "late one" in w.value for w in at.warning
    )


def test_an_admins_new_schedule_defaults_to_standard(dash: Dash) -> None:
    at = on_page(dash, "adam")
    assert at.radio(key="nx_sched_privacy").value == "standard"
