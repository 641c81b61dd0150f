"""Who a request acts for: login-cookie verification and credential checks, without a server."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from api_server import write_auth_file
from sqlalchemy import Engine

from nano_export import api, logs, tokens
from nano_export.errors import AuthenticationFailed
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
    write_auth_file(settings.auth_file)
    return api._Context(settings)


def test_bearer_token_authenticates_with_the_role_from_the_auth_file(
    context: api._Context, engine: Engine
) -> None:
    token = tokens.create_token(engine, name="ada")
    caller = context.authenticate(f"Bearer {token}", {})
    assert (caller.user, caller.role, caller.via) == ("ada", "admin", "token")


def test_cookie_authenticates_only_with_the_secret_key_of_the_settings(
    context: api._Context, settings: Settings
) -> None:
    good = cookie({"username": "ann", "exp_date": time.time() + 60}, settings.resolved_secret())
    caller = context.authenticate(None, {"nano_export_auth": good})
    assert (caller.user, caller.role, caller.via) == ("ann", "analyst", "cookie")
    with pytest.raises(AuthenticationFailed, match="invalid or expired"):
        context.authenticate(None, {"nano_export_auth": cookie({"username": "ann"})})


def test_authorization_header_wins_over_a_cookie(context: api._Context, settings: Settings) -> None:
    good = cookie({"username": "ann", "exp_date": time.time() + 60}, settings.resolved_secret())
    with pytest.raises(AuthenticationFailed, match="invalid or revoked"):
        context.authenticate("Bearer nxt_wrong", {"nano_export_auth": good})


def test_token_for_a_removed_user_and_missing_credentials_are_refused(
    context: api._Context, engine: Engine
) -> None:
    token = tokens.create_token(engine, name="gone")
    with pytest.raises(AuthenticationFailed, match="no longer exists"):
        context.authenticate(f"Bearer {token}", {})
    with pytest.raises(AuthenticationFailed, match="authentication required"):
        context.authenticate(None, {})


def test_key_value_formatter_prints_the_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "nano_export.api", "levelname": "INFO", "msg": "api request", "status": 202}
    )
    line = logs.KeyValueFormatter().format(record)
    assert "msg='api request'" in line and "status=202" in line
