"""Who a request acts for: login-cookie verification and credential checks, without a server."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from api_server import write_auth_file
from sqlalchemy import Engine, update

from nano_export import api, auth, logs, sessions, tokens
from nano_export.errors import AuthenticationFailed
from nano_export.schema import login_sessions
from nano_export.settings import Settings

KEY = "cookie-key-0123456789abcdef0123456789abcdef"


def cookie(payload: dict[str, object], key: str = KEY) -> str:
    """A JWT signed like streamlit-authenticator 0.4.2's login cookie (HS256)."""
    return jwt.encode(payload, key, algorithm="HS256")


def test_login_cookie_with_valid_signature_and_future_expiry_names_the_user() -> None:
    value = cookie({"username": "Ann", "exp_date": time.time() + 60})
    assert api.user_from_login_cookie(value, secret=KEY) == "ann"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(cookie({"username": "ann", "exp_date": time.time() + 60}, "x" * 40), id="key"),
        pytest.param(cookie({"username": "ann", "exp_date": time.time() - 1}), id="expired"),
        pytest.param(cookie({"username": "ann"}), id="no-exp_date"),
        pytest.param(cookie({"username": "ann", "exp_date": "soon"}), id="text-exp_date"),
        pytest.param(cookie({"username": "ann", "exp_date": True}), id="bool-exp_date"),
        pytest.param(cookie({"exp_date": time.time() + 60}), id="no-username"),
        pytest.param(cookie({"username": " ", "exp_date": time.time() + 60}), id="blank-username"),
        pytest.param(
            jwt.encode({"username": "ann", "exp_date": time.time() + 60}, None, algorithm="none"),
            id="alg-none",
        ),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_login_cookie_is_refused_when_forged_expired_or_malformed(value: str) -> None:
    assert api.user_from_login_cookie(value, secret=KEY) is None


def test_login_cookie_expiry_is_checked_against_the_given_clock() -> None:
    value = cookie({"username": "ann", "exp_date": 1_000.0})
    assert api.user_from_login_cookie(value, secret=KEY, now=999.0) == "ann"
    assert api.user_from_login_cookie(value, secret=KEY, now=1_000.0) is None


@pytest.fixture
def context(settings: Settings, engine: Engine) -> api._Context:
    """An API context over the test database with the users of ``api_server.USERS``."""
    write_auth_file(settings)
    return api._Context(settings)


def test_bearer_token_authenticates_with_the_role_from_the_auth_file(
    context: api._Context, engine: Engine
) -> None:
    token = tokens.create_token(engine, name="ada")
    caller = context.authenticate(f"Bearer {token}", {})
    assert (caller.user, caller.role, caller.via) == ("ada", "admin", "token")


def _login(engine: Engine, settings: Settings, name: str = "ann") -> tuple[str, str]:
    """A session for ``name`` and its login cookie, as the dashboard would set it."""
    user = auth.get_user(engine, name)
    assert user is not None
    sid = sessions.start_session(engine, user_id=user.id, max_age_h=settings.session_max_age_h)
    value = sessions.encode_cookie(
        username=name, sid=sid, secret=settings.resolved_secret(), max_age_h=1
    )
    return sid, value


def test_cookie_authenticates_only_with_the_secret_key_and_an_open_session(
    context: api._Context, settings: Settings, engine: Engine
) -> None:
    _sid, good = _login(engine, settings)
    caller = context.authenticate(None, {"nano_export_auth": good})
    assert (caller.user, caller.role, caller.via) == ("ann", "analyst", "cookie")
    with pytest.raises(AuthenticationFailed, match="invalid or expired"):
        context.authenticate(None, {"nano_export_auth": cookie({"username": "ann"})})
    # Signed with the right key but without a session (what the library alone would write).
    bare = cookie({"username": "ann", "exp_date": time.time() + 60}, settings.resolved_secret())
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        context.authenticate(None, {"nano_export_auth": bare})


def test_authorization_header_wins_over_a_cookie(
    context: api._Context, settings: Settings, engine: Engine
) -> None:
    _sid, good = _login(engine, settings)
    with pytest.raises(AuthenticationFailed, match="invalid, expired or revoked"):
        context.authenticate("Bearer nxt_wrong", {"nano_export_auth": good})


def test_token_for_a_removed_user_and_missing_credentials_are_refused(
    context: api._Context, engine: Engine
) -> None:
    token = tokens.create_token(engine, name="busy")
    auth.remove_user(engine, username="busy", actor="test")
    with pytest.raises(AuthenticationFailed, match="invalid, expired or revoked"):
        context.authenticate(f"Bearer {token}", {})
    with pytest.raises(AuthenticationFailed, match="authentication required"):
        context.authenticate(None, {})


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda e, sid: sessions.end_session(e, sid), id="logout"),
        pytest.param(lambda e, sid: auth.remove_user(e, username="ann", actor="t"), id="removed"),
        pytest.param(
            lambda e, sid: auth.set_password(
                e, username="ann", password="a-new-password", actor="t", rounds=4
            ),
            id="password-changed",
        ),
        pytest.param(
            lambda e, sid: auth.revoke_sessions(e, username="ann", actor="t"), id="revoked"
        ),
    ],
)
def test_an_old_cookie_is_refused_after_the_session_ended(
    context: api._Context, settings: Settings, engine: Engine, end: Any
) -> None:
    sid, value = _login(engine, settings)
    assert context.authenticate(None, {"nano_export_auth": value}).user == "ann"
    end(engine, sid)
    with pytest.raises(AuthenticationFailed) as caught:
        context.authenticate(None, {"nano_export_auth": value})
    assert caught.value.http_status == 401


def test_a_cookie_past_the_maximum_lifetime_is_refused_whatever_its_exp_date(
    context: api._Context, settings: Settings, engine: Engine
) -> None:
    sid, _ = _login(engine, settings)
    year_3000 = cookie(
        {"username": "ann", "exp_date": 32_503_680_000.0, "sid": sid}, settings.resolved_secret()
    )
    assert context.authenticate(None, {"nano_export_auth": year_3000}).user == "ann"
    with engine.begin() as conn:
        conn.execute(
            update(login_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        context.authenticate(None, {"nano_export_auth": year_3000})


def test_an_idle_session_ends(context: api._Context, settings: Settings, engine: Engine) -> None:
    _sid, value = _login(engine, settings)
    idle = timedelta(minutes=settings.session_idle_timeout_min + 1)
    with engine.begin() as conn:
        conn.execute(update(login_sessions).values(last_seen_at=datetime.now(UTC) - idle))
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        context.authenticate(None, {"nano_export_auth": value})


def test_a_session_of_another_user_is_not_accepted_under_a_forged_name(
    context: api._Context, settings: Settings, engine: Engine
) -> None:
    sid, _ = _login(engine, settings, "vic")
    swapped = sessions.encode_cookie(
        username="ada", sid=sid, secret=settings.resolved_secret(), max_age_h=1
    )
    with pytest.raises(AuthenticationFailed):
        context.authenticate(None, {"nano_export_auth": swapped})


def test_failed_api_credentials_from_one_address_are_throttled(
    context: api._Context, engine: Engine
) -> None:
    for _ in range(context.settings.login_free_failures):
        with pytest.raises(AuthenticationFailed):
            context.authenticate("Bearer nxt_guess", {}, "10.0.0.9")
    with pytest.raises(api.TooManyRequests, match="try again in"):
        context.authenticate("Bearer nxt_guess", {}, "10.0.0.9")
    with pytest.raises(AuthenticationFailed):  # another address is not held back
        context.authenticate("Bearer nxt_guess", {}, "10.0.0.10")
    token = tokens.create_token(engine, name="ann")
    assert context.authenticate(f"Bearer {token}", {}, "10.0.0.9").user == "ann"


def test_each_token_has_a_request_rate_limit(context: api._Context, engine: Engine) -> None:
    limiter = api.RateLimiter()
    for _ in range(3):
        limiter.hit("token:a", 3, now=120.0)
    with pytest.raises(api.TooManyRequests) as caught:
        limiter.hit("token:a", 3, now=121.0)
    assert caught.value.retry_after == 59
    limiter.hit("token:b", 3, now=121.0)  # another token has its own count
    limiter.hit("token:a", 3, now=180.0)  # the next minute starts afresh


def test_key_value_formatter_prints_the_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "nano_export.api", "levelname": "INFO", "msg": "api request", "status": 202}
    )
    line = logs.KeyValueFormatter().format(record)
    assert "msg='api request'" in line and "status=202" in line
