"""The login gate: real form with bcrypt, audited logins, nothing rendered before login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dashboard_app import PASSWORD, Dash, make_dash
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from nano_export import auth, sessions
from nano_export.audit import list_events
from nano_export.db import get_engine
from nano_export.schema import login_sessions
from nano_export.ui import session


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


def _login_form_shown(at: AppTest) -> bool:
    return [t.label for t in at.text_input] == ["Username", "Password"] and not at.metric


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda e: auth.revoke_sessions(e, username="anna", actor="t"), id="revoked"),
        pytest.param(lambda e: auth.remove_user(e, username="anna", actor="t"), id="removed"),
        pytest.param(
            lambda e: auth.set_password(
                e, username="anna", password="another-password", actor="t", rounds=4
            ),
            id="password-changed",
        ),
    ],
)
def test_an_open_dashboard_shows_the_login_once_its_session_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, end: Any
) -> None:
    dash = make_dash(tmp_path, monkeypatch, db_url)  # on SQLite and on PostgreSQL
    at = _log_in(dash.app().run(), "anna")
    assert at.metric
    end(get_engine(dash.settings.db_url))
    at.run()
    assert _login_form_shown(at)
    assert "Your session has ended; log in again." in [e.value for e in at.error]


def test_a_dashboard_session_past_its_maximum_lifetime_shows_the_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    dash = make_dash(tmp_path, monkeypatch, db_url)
    at = _log_in(dash.app().run(), "anna")
    engine = get_engine(dash.settings.db_url)
    with engine.begin() as conn:
        conn.execute(
            update(login_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    at.run()
    assert _login_form_shown(at)


def test_a_failed_login_of_an_unknown_user_is_audited_without_the_typed_name(dash: Dash) -> None:
    at = dash.app().run()
    at.text_input[0].input("my-secret-password")  # a password typed into the wrong box
    at.text_input[1].input("x")
    at.button[0].click().run()
    assert "Username or password is incorrect." in [e.value for e in at.error]
    assert _events(dash, "login.failed") == [("unknown user", "dashboard")]
    with get_engine(dash.settings.db_url).connect() as conn:
        assert "my-secret-password" not in str([e.public() for e in list_events(conn)])


def test_the_sixth_wrong_password_is_throttled_and_the_right_one_then_waits_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("NANO_EXPORT_LOGIN_BACKOFF_S", "30")
    dash = make_dash(tmp_path, monkeypatch, db_url)
    at = dash.app().run()
    for _ in range(5):
        at.text_input[0].input("anna")
        at.text_input[1].input("wrong password")
        at.button[0].click().run()
        assert "Username or password is incorrect." in [e.value for e in at.error]
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert any("Too many failed logins" in e.value for e in at.error)
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert any("Too many failed logins" in e.value for e in at.error)
    assert _login_form_shown(at)
    assert _events(dash, "login.failed") == [("anna", "dashboard")] * 5
    assert _events(dash, "login.throttled") == [("anna", "dashboard")] * 2


def test_a_cookie_login_cut_short_before_its_session_id_was_kept_logs_in_on_the_next_run(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun arriving as the page loads can stop a cookie login's run after the library marked
    the browser session logged in and before the session id was kept: the next run takes the id
    from the cookie again instead of saying the session ended."""
    engine = get_engine(dash.settings.db_url)
    anna = auth.get_user(engine, "anna")
    assert anna is not None
    sid = sessions.start_session(engine, user_id=anna.id, max_age_h=1)
    # AppTest sends no cookies: the login cookie's session id is given here instead.
    monkeypatch.setattr(session, "_cookie_sid", lambda _settings: sid)
    at = dash.app()
    at.session_state["authentication_status"] = True  # as the interrupted run left it
    at.session_state["username"] = "anna"
    at.session_state["name"] = "Anna"
    at.run()
    assert not at.exception
    assert not _login_form_shown(at) and at.metric
    assert at.session_state[session.SID] == sid


@pytest.mark.parametrize("cookie_user", [None, "adam"], ids=["no-cookie", "another-users-cookie"])
def test_a_login_without_a_session_id_and_no_matching_cookie_shows_the_login(
    dash: Dash, monkeypatch: pytest.MonkeyPatch, cookie_user: str | None
) -> None:
    engine = get_engine(dash.settings.db_url)
    sid = None
    if cookie_user is not None:
        other = auth.get_user(engine, cookie_user)
        assert other is not None
        sid = sessions.start_session(engine, user_id=other.id, max_age_h=1)
    monkeypatch.setattr(session, "_cookie_sid", lambda _settings: sid)
    at = dash.app()
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "anna"
    at.session_state["name"] = "Anna"
    at.run()
    assert _login_form_shown(at)
    assert "Your session has ended; log in again." in [e.value for e in at.error]
