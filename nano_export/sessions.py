"""Server-side login sessions: every login has a row, checked on every dashboard run and request.

The login cookie (streamlit-authenticator's HS256 JWT) carries ``username``, ``exp_date`` and our
``sid``, a random session id; only its SHA-256 is stored. A cookie is accepted only while its
session is open: not logged out, not revoked (``users sessions revoke``, a password change, the
user's removal), younger than ``SESSION_MAX_AGE_H`` whatever ``exp_date`` says, and used within
``SESSION_IDLE_TIMEOUT_MIN``. Sessions belong to the user's id, so a re-added name starts afresh.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import jwt
from sqlalchemy import Engine, select, update

from nano_export.db import as_utc, utcnow
from nano_export.models import Role
from nano_export.schema import login_sessions, users

#: ``last_seen_at`` is written at most this often per session.
TOUCH_EVERY: Final = timedelta(seconds=30)


@dataclass(frozen=True)
class SessionUser:
    """Who an open session belongs to."""

    user_id: str
    username: str
    name: str
    role: Role


@dataclass(frozen=True)
class CookieClaims:
    """What a correctly signed, unexpired login cookie says."""

    username: str
    sid: str | None


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def start_session(engine: Engine, *, user_id: str, max_age_h: float) -> str:
    """Open a session for the user; return its id (for the cookie, never stored in clear)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            login_sessions.insert().values(
                id_hash=_digest(sid),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=max_age_h),
            )
        )
    return sid


def end_session(engine: Engine, sid: str, *, reason: str = "logout") -> bool:
    """End one session (logout); whether it was open."""
    t = login_sessions
    with engine.begin() as conn:
        result = conn.execute(
            update(t)
            .where(t.c.id_hash == _digest(sid), t.c.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason)
        )
    return bool(result.rowcount)


def check_session(
    engine: Engine, sid: str, *, idle_timeout_min: float, username: str | None = None
) -> SessionUser | None:
    """The user of an open session, or None; a valid session's last use is recorded.

    A session past its maximum age or idle for longer than ``idle_timeout_min`` is ended here.
    ``username``, when given, must be the session's user (the cookie's claim).
    """
    t = login_sessions
    stmt = (
        select(
            t.c.user_id,
            t.c.expires_at,
            t.c.last_seen_at,
            t.c.ended_at,
            users.c.username,
            users.c.name,
            users.c.role,
        )
        .join(users, users.c.id == t.c.user_id)
        .where(t.c.id_hash == _digest(sid))
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or row["ended_at"] is not None:
        return None
    if username is not None and row["username"] != username:
        return None
    now = utcnow()
    expires = as_utc(row["expires_at"])
    last = as_utc(row["last_seen_at"])
    assert expires is not None and last is not None
    reason = None
    if now >= expires:
        reason = "expired"
    elif now - last > timedelta(minutes=idle_timeout_min):
        reason = "idle"
    if reason is not None:
        end_session(engine, sid, reason=reason)
        return None
    if now - last >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id_hash == _digest(sid)).values(last_seen_at=now))
    return SessionUser(
        user_id=str(row["user_id"]),
        username=str(row["username"]),
        name=str(row["name"]),
        role=row["role"],
    )


def encode_cookie(*, username: str, sid: str, secret: str, max_age_h: float) -> str:
    """A login cookie value as streamlit-authenticator writes it, plus the session id."""
    exp = time.time() + max_age_h * 3600
    return jwt.encode({"username": username, "exp_date": exp, "sid": sid}, secret, "HS256")


def decode_cookie(value: str, *, secret: str, now: float | None = None) -> CookieClaims | None:
    """The claims of a login cookie, or None if forged, malformed or past its ``exp_date``."""
    try:
        payload = jwt.decode(value, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    username = payload.get("username")
    expires = payload.get("exp_date")
    sid = payload.get("sid")
    if not isinstance(username, str) or not username.strip():
        return None
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return CookieClaims(
        username=username.strip().lower(), sid=sid if isinstance(sid, str) and sid else None
    )
