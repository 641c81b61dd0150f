"""One login attempt, the same for every interface: throttle, bcrypt, audit, session.

The dashboard's form calls :func:`attempt_login`; the API's failed credentials go through the
same throttle (:func:`throttle.address_key` with ``kind="api"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine

from nano_export import audit, auth, sessions, throttle
from nano_export.auth import UserInfo
from nano_export.settings import Settings

UNKNOWN_USER: Final = "unknown user"
BAD_CREDENTIALS: Final = "Username or password is incorrect."


@dataclass(frozen=True)
class LoginResult:
    """The outcome: a user and a session id, or a message (and how long to wait)."""

    user: UserInfo | None = None
    sid: str | None = None
    message: str = ""
    wait_s: float = 0.0


def _actor(engine: Engine, username: str) -> str:
    # Whatever was typed is stored only if it names a user: a password typed into the wrong box
    # must not end up in the audit log.
    return username if auth.get_user(engine, username) is not None else UNKNOWN_USER


def attempt_login(
    engine: Engine,
    settings: Settings,
    *,
    username: str,
    password: str,
    address: str | None,
    interface: str = "dashboard",
) -> LoginResult:
    """Check a user name and password under the throttle; open a session on success."""
    name = username.strip().lower()
    keys = [throttle.user_key(name), throttle.address_key(address)]
    wait = throttle.wait_seconds(engine, keys)
    if wait > 0:
        with engine.begin() as conn:
            audit.record(
                conn,
                event="login.throttled",
                actor=_actor(engine, name),
                interface=interface,
                reason="too many failed logins",
                details={"address": address, "wait_s": math.ceil(wait)},
            )
        return LoginResult(
            message=f"Too many failed logins: try again in {math.ceil(wait)} s.", wait_s=wait
        )
    rounds = auth.dummy_rounds(engine, settings.bcrypt_rounds)
    user = auth.verify_password(engine, name, password, rounds=rounds)
    if user is None:
        throttle.record_failure(
            engine, keys, free=settings.login_free_failures, base_s=settings.login_backoff_s
        )
        with engine.begin() as conn:
            audit.record(
                conn,
                event="login.failed",
                actor=_actor(engine, name),
                interface=interface,
                reason="bad credentials",
                details={"address": address},
            )
        return LoginResult(message=BAD_CREDENTIALS)
    throttle.clear(engine, [throttle.user_key(name)])
    sid = sessions.start_session(engine, user_id=user.id, max_age_h=settings.session_max_age_h)
    return LoginResult(user=user, sid=sid)
