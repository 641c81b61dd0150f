"""Login gate of the dashboard: streamlit-authenticator with a bcrypt users file, audited events."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import streamlit as st
import streamlit_authenticator as stauth

from nano_export import audit, auth
from nano_export.db import get_engine
from nano_export.models import ALLOWED_LEVELS, Privacy, Role
from nano_export.settings import Settings

log = logging.getLogger(__name__)

#: Session keys this module owns (the library owns name, username, authentication_status, …).
_AUDITED = "_nx_login_audited"
_VIA_FORM = "_nx_login_via_form"
_PENDING_QUERY = "_nx_pending_query"
_LOGIN_ERROR = "_nx_login_error"
_SET_COOKIE = "_nx_set_cookie"
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
    """A streamlit-authenticator over a copy of the users file; the cookie key is the secret."""
    path = settings.auth_file
    return stauth.Authenticate(
        auth.authenticator_credentials(path),  # a dict: given a path the library rewrites it
        cookie_name=auth.cookie_name(path),
        cookie_key=settings.resolved_secret(),
        cookie_expiry_days=auth.cookie_expiry_days(path),
        auto_hash=False,
        login_sleep_time=login_sleep_time(),
    )


def _audit(settings: Settings, *, event: str, actor: str, **details: Any) -> None:
    try:
        with get_engine(settings.db_url).begin() as conn:
            audit.record(
                conn, event=event, actor=actor, interface="dashboard", details=details or None
            )
    except Exception:  # an audit outage must not lock people out; it is logged loudly
        log.exception("could not write audit event", extra={"event": event, "actor": actor})


def current_user(authenticator: Any, settings: Settings) -> CurrentUser | None:
    """The logged-in user (a valid cookie logs in silently), or None; audits each new login."""
    if not st.session_state.get("authentication_status"):
        try:
            authenticator.login(location="unrendered")
        except Exception as exc:  # a cookie of a user no longer in the users file
            log.warning("cookie login refused", extra={"reason": str(exc)})
            st.session_state["authentication_status"] = None
    if not st.session_state.get("authentication_status"):
        return None
    username = str(st.session_state.get("username") or "")
    role = auth.role_of(settings.auth_file, username)
    if role is None:  # removed from the users file since the cookie was issued
        st.session_state["authentication_status"] = None
        return None
    if st.session_state.pop(_SET_COOKIE, False):
        # The signed JWT cookie lets a new tab or a share link log in without the form.
        authenticator.cookie_controller.set_cookie()
    if st.session_state.get(_AUDITED) != username:
        via = "form" if st.session_state.pop(_VIA_FORM, False) else "cookie"
        _audit(settings, event="login.succeeded", actor=username, via=via)
        st.session_state[_AUDITED] = username
    return CurrentUser(
        username=username, name=str(st.session_state.get("name") or username), role=role
    )


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
    name = username.strip().lower()
    if not name or not password:
        st.session_state[_LOGIN_ERROR] = "Enter your user name and password."
        return
    # The library's own login calls: bcrypt check, session state, then the signed cookie.
    ok = authenticator.authentication_controller.login(name, password)
    if ok:
        st.session_state.pop(_LOGIN_ERROR, None)
        st.session_state[_VIA_FORM] = True
        st.session_state["logout"] = False  # lets the new cookie work after an earlier logout
        st.session_state[_SET_COOKIE] = True  # set on the next run, when the component renders
        st.rerun()
    st.session_state["authentication_status"] = None
    st.session_state[_LOGIN_ERROR] = "Username or password is incorrect."
    _audit(settings, event="login.failed", actor=name or "(empty)", reason="bad credentials")


def logout_button(authenticator: Any, settings: Settings, user: CurrentUser) -> bool:
    """A sidebar "Log out" button; audits ``logout`` once; True when the user just logged out."""

    def _on_logout(_info: dict[str, Any]) -> None:
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
