"""Login gate of the dashboard: streamlit-authenticator over the users table, server-side sessions.

Every run checks the login's session row (:mod:`nano_export.sessions`): a logged-out, revoked,
expired or idle session shows the login form again, whatever the browser still holds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import streamlit as st
import streamlit_authenticator as stauth

from nano_export import audit, auth, sessions
from nano_export.db import get_engine
from nano_export.login import attempt_login
from nano_export.models import ALLOWED_LEVELS, Privacy, Role
from nano_export.settings import Settings

log = logging.getLogger(__name__)

#: Session keys this module owns (the library owns name, username, authentication_status, …).
_AUDITED = "_nx_login_audited"
_VIA_FORM = "_nx_login_via_form"
_PENDING_QUERY = "_nx_pending_query"
_LOGIN_ERROR = "_nx_login_error"
_SET_COOKIE = "_nx_set_cookie"
SID = "_nx_sid"
SESSION_ENDED = "Your session has ended; log in again."
HIDE_SIDEBAR = (
    "<style>[data-testid='stSidebar'], [data-testid='stExpandSidebarButton'],"
    " [data-testid='stSidebarCollapsedControl'] { display: none !important; }</style>"
)


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in user of this browser session."""

    username: str
    name: str
    role: Role

    @property
    def top_level(self) -> Privacy:
        """The most detailed privacy level the role may see."""
        return ALLOWED_LEVELS[self.role][-1]

    @property
    def is_admin(self) -> bool:
        """Whether the user sees everyone's exports and the audit log."""
        return self.role == "admin"


def login_sleep_time() -> float:
    """Seconds the library waits for the cookie before showing the form (0 in tests)."""
    try:
        return float(os.environ.get("NANO_EXPORT_LOGIN_SLEEP_TIME", "0.3"))
    except ValueError:
        return 0.3


def make_authenticator(settings: Settings) -> Any:
    """A streamlit-authenticator over the users table; the cookie key is the signing secret.

    The cookie it writes also carries the session id of the login (``sid``).
    """
    engine = get_engine(settings.db_url)
    secret = settings.resolved_secret()
    authenticator = stauth.Authenticate(
        auth.authenticator_credentials(engine),  # a dict: the library never writes it back
        cookie_name=auth.COOKIE_NAME,
        cookie_key=secret,
        cookie_expiry_days=settings.session_max_age_h / 24,
        auto_hash=False,
        login_sleep_time=login_sleep_time(),
    )

    def _token_encode() -> str:
        return sessions.encode_cookie(
            username=str(st.session_state["username"]),
            sid=str(st.session_state.get(SID) or ""),
            secret=secret,
            max_age_h=settings.session_max_age_h,
        )

    # streamlit-authenticator 0.4.2 has no hook for claims of our own: its cookie model's encoder
    # is replaced on this instance, so the cookie it writes also names the session.
    authenticator.cookie_controller.cookie_model._token_encode = _token_encode
    return authenticator


def _audit(settings: Settings, *, event: str, actor: str, **details: Any) -> None:
    try:
        with get_engine(settings.db_url).begin() as conn:
            audit.record(
                conn, event=event, actor=actor, interface="dashboard", details=details or None
            )
    except Exception:  # an audit outage must not lock people out; it is logged loudly
        log.exception("could not write audit event", extra={"event": event, "actor": actor})


def _drop_login(message: str | None = SESSION_ENDED) -> None:
    """Forget this browser session's login; the cookie it may still hold is not read again."""
    for key in ("authentication_status", "username", "name", "email", "roles"):
        st.session_state[key] = None
    st.session_state["logout"] = True
    st.session_state.pop(SID, None)
    st.session_state.pop(_AUDITED, None)
    set_page_user(None)
    if message:
        st.session_state[_LOGIN_ERROR] = message


def _cookie_sid(settings: Settings) -> str | None:
    value = st.context.cookies.get(auth.COOKIE_NAME)
    if not value:
        return None
    claims = sessions.decode_cookie(value, secret=settings.resolved_secret())
    return claims.sid if claims else None


def current_user(authenticator: Any, settings: Settings) -> CurrentUser | None:
    """The logged-in user (a valid cookie logs in silently), or None; audits each new login.

    The login's server-side session is checked on every run.
    """
    if not st.session_state.get("authentication_status"):
        try:
            authenticator.login(location="unrendered")
        except Exception as exc:  # a cookie of a user no longer in the users table
            log.warning("cookie login refused", extra={"reason": str(exc)})
            st.session_state["authentication_status"] = None
        if st.session_state.get("authentication_status"):
            st.session_state[SID] = _cookie_sid(settings)
    if not st.session_state.get("authentication_status"):
        return None
    if not st.session_state.get(SID):
        # A rerun arriving as the page loads can stop a cookie login's run after the library
        # marked it logged in and before the session id above was kept: read it again. The
        # session must still be open and be this user's (checked below), as on any run.
        st.session_state[SID] = _cookie_sid(settings)
    username = str(st.session_state.get("username") or "")
    sid = st.session_state.get(SID)
    found = None
    if isinstance(sid, str) and sid:
        found = sessions.check_session(
            get_engine(settings.db_url),
            sid,
            idle_timeout_min=settings.session_idle_timeout_min,
            username=username,
        )
    if found is None:  # logged out elsewhere, revoked, expired, idle, or the user is gone
        _drop_login()
        return None
    if st.session_state.pop(_SET_COOKIE, False):
        # The signed JWT cookie lets a new tab or a share link log in without the form.
        authenticator.cookie_controller.set_cookie()
    if st.session_state.get(_AUDITED) != username:
        via = "form" if st.session_state.pop(_VIA_FORM, False) else "cookie"
        _audit(settings, event="login.succeeded", actor=username, via=via)
        st.session_state[_AUDITED] = username
    return CurrentUser(username=username, name=found.name, role=found.role)


def _remember_query() -> None:
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    if params:
        st.session_state[_PENDING_QUERY] = params


def restore_query() -> None:
    """Put back the share-link query parameters seen before logging in."""
    pending = st.session_state.pop(_PENDING_QUERY, None)
    if pending and not st.query_params:
        st.query_params.from_dict(pending)


def login_page(authenticator: Any, settings: Settings) -> None:
    """The only page shown before login: the form with "Username", "Password" and "Login"."""
    _remember_query()
    # No sidebar next to the form (after a logout the browser would keep an empty one open).
    st.markdown(HIDE_SIDEBAR, unsafe_allow_html=True)
    left, middle, right = st.columns([1, 1.3, 1])
    del left, right
    with middle:
        st.title("nano-export")
        st.caption("Explore and export LLM agent evaluation runs — log in to continue.")
        with st.form("Login"):
            st.subheader("Login")
            username = st.text_input("Username", autocomplete="username")
            password = st.text_input("Password", type="password", autocomplete="current-password")
            submitted = st.form_submit_button("Login", type="primary", width="stretch")
        if submitted:
            _submit(authenticator, settings, username, password)
        if st.session_state.get(_LOGIN_ERROR):
            st.error(st.session_state[_LOGIN_ERROR])


def _submit(authenticator: Any, settings: Settings, username: str, password: str) -> None:
    del authenticator  # the password check is ours: throttled, timed alike, with a session
    name = username.strip().lower()
    if not name or not password:
        st.session_state[_LOGIN_ERROR] = "Enter your user name and password."
        return
    result = attempt_login(
        get_engine(settings.db_url),
        settings,
        username=name,
        password=password,
        address=st.context.ip_address,
    )
    if result.user is not None:
        user = result.user
        st.session_state.pop(_LOGIN_ERROR, None)
        st.session_state[_VIA_FORM] = True
        st.session_state.update(
            {
                "authentication_status": True,
                "username": user.username,
                "name": user.name,
                "email": user.email,
                "roles": [user.role],
                "logout": False,  # lets the new cookie work after an earlier logout
                SID: result.sid,
                _SET_COOKIE: True,  # set on the next run, when the component renders
            }
        )
        st.rerun()
    st.session_state["authentication_status"] = None
    st.session_state[_LOGIN_ERROR] = result.message


def logout_button(authenticator: Any, settings: Settings, user: CurrentUser) -> bool:
    """A sidebar "Log out" button; ends the session and audits ``logout`` once.

    True when the user just logged out.
    """

    def _on_logout(_info: dict[str, Any]) -> None:
        sid = st.session_state.pop(SID, None)
        if isinstance(sid, str) and sid:
            sessions.end_session(get_engine(settings.db_url), sid, reason="logout")
        _audit(settings, event="logout", actor=user.username)
        st.session_state.pop(_AUDITED, None)

    authenticator.logout("Log out", location="sidebar", key="nx_logout", callback=_on_logout)
    if st.session_state.get("authentication_status"):
        return False
    set_page_user(None)
    return True


def require_user() -> CurrentUser:
    """The logged-in user for a page; stops the page (renders nothing) when there is none."""
    user = st.session_state.get("_nx_user")
    if not isinstance(user, CurrentUser) or not st.session_state.get("authentication_status"):
        st.warning("Please log in first.")
        st.stop()
    return user


def set_page_user(user: CurrentUser | None) -> None:
    """Record the user the entry script resolved, for ``require_user`` in the pages."""
    if user is None:
        st.session_state.pop("_nx_user", None)
    else:
        st.session_state["_nx_user"] = user
