"""The login gate: real form with bcrypt, audited logins, nothing rendered before login."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_app import PASSWORD, Dash, make_dash
from streamlit.testing.v1 import AppTest

from nano_export.audit import list_events
from nano_export.db import get_engine


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    return make_dash(tmp_path, monkeypatch)


def _events(dash: Dash, event: str) -> list[tuple[str, str | None]]:
    with get_engine(dash.settings.db_url).connect() as conn:
        return [(e.actor, e.interface) for e in list_events(conn, event=event)]


def test_login_form_checks_bcrypt_and_audits_success_once(dash: Dash) -> None:
    at = dash.app().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric and not at.get("plotly_chart")

    at.text_input[0].input("ANNA")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()

    assert not at.exception
    assert [t.value for t in at.title] == ["Explore"]
    assert at.metric[0].value == "8"
    at.run()
    at.run()
    assert _events(dash, "login.succeeded") == [("anna", "dashboard")]


def test_wrong_password_is_refused_and_audited(dash: Dash) -> None:
    at = dash.app().run()
    at.text_input[0].input("anna")
    at.text_input[1].input("wrong")
    at.button[0].click().run()

    assert "Username or password is incorrect." in [e.value for e in at.error]
    assert not at.metric
    at.run()
    assert _events(dash, "login.failed") == [("anna", "dashboard")]
    assert _events(dash, "login.succeeded") == []


@pytest.mark.parametrize(
    "page", ["app_pages/export.py", "app_pages/history.py", "app_pages/audit.py"]
)
def test_deep_link_while_logged_out_shows_only_the_login(dash: Dash, page: str) -> None:
    # Register the pages (AppTest only switches to known pages), then ask for one logged out.
    at = dash.logged_in("adam").run()
    at.session_state["authentication_status"] = None
    at.switch_page(page).run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.dataframe and not at.metric
    assert all(t.value == "nano-export" for t in at.title)


def test_logout_is_audited_and_returns_to_the_login(dash: Dash) -> None:
    at = dash.logged_in("adam").run()
    at.sidebar.button(key="nx_logout").click().run()
    assert any("logged out" in s.value for s in at.success)
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert _events(dash, "logout") == [("adam", "dashboard")]


def _log_in(at: AppTest, username: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize(
    ("page", "title"),
    [
        ("app_pages/export.py", "Export"),
        ("app_pages/history.py", "History"),
        ("app_pages/schedules.py", "Schedules"),
        ("app_pages/explore.py", "Explore"),
    ],
)
def test_deep_link_as_first_request_lands_on_its_page_after_login(
    dash: Dash, page: str, title: str
) -> None:
    at = dash.app()
    at.query_params["provider"] = "openai"
    at.switch_page(page).run()  # the URL /export?provider=openai as the first request
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.dataframe and not at.metric and not at.get("plotly_chart")
    assert at.query_params["provider"] in ("openai", ["openai"])

    _log_in(at, "anna")
    assert [t.value for t in at.title] == [title]
    assert at.query_params["provider"] in ("openai", ["openai"])
    if title in ("Explore", "Export"):
        assert at.multiselect(key="nx_provider").value == ["openai"]


def test_audit_link_for_a_non_admin_says_why_it_is_not_shown(dash: Dash) -> None:
    at = dash.app()
    at.switch_page("app_pages/audit.py").run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    _log_in(at, "anna")
    assert [t.value for t in at.title] == ["Audit"]
    assert [e.value for e in at.error] == [
        "The Audit page is for admins, and your role is analyst. Ask an admin if you need it."
    ]
    assert not at.dataframe  # no audit events shown


def test_audit_link_for_an_admin_lands_on_the_audit_log(dash: Dash) -> None:
    at = dash.app()
    at.switch_page("app_pages/audit.py").run()
    _log_in(at, "adam")
    assert [t.value for t in at.title] == ["Audit log"]
