"""One login attempt: throttling per name and address, equal timing, audited outcomes."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import Engine

from nano_export import auth, throttle
from nano_export.audit import list_events
from nano_export.db import get_engine
from nano_export.login import UNKNOWN_USER, attempt_login
from nano_export.settings import Settings

PW = "the-right-password"


@pytest.fixture
def engine(settings: Settings) -> Engine:
    """The test database with user ann (bcrypt cost 10: slow enough to time)."""
    engine = get_engine(settings.db_url)
    auth.add_user(engine, username="ann", role="analyst", password=PW, rounds=10)
    return engine


def _try(engine: Engine, settings: Settings, name: str, pw: str, addr: str = "10.1.1.1") -> str:
    result = attempt_login(engine, settings, username=name, password=pw, address=addr)
    return "ok" if result.user is not None else result.message


def test_the_right_password_opens_a_session(engine: Engine, settings: Settings) -> None:
    result = attempt_login(engine, settings, username="ANN", password=PW, address="::1")
    assert result.user is not None and result.user.username == "ann"
    assert result.sid


def test_after_five_failures_for_a_name_even_the_right_password_waits(
    engine: Engine, settings: Settings
) -> None:
    for n in range(5):
        assert _try(engine, settings, "ann", "wrong", addr=f"10.0.0.{n}") == (
            "Username or password is incorrect."
        )
    assert "Too many failed logins" in _try(engine, settings, "ann", "wrong", addr="10.0.1.1")
    assert "Too many failed logins" in _try(engine, settings, "ann", PW, addr="10.0.1.2")
    with engine.connect() as conn:
        assert len(list_events(conn, event="login.failed")) == 5
        throttled = list_events(conn, event="login.throttled")
    assert [e.actor for e in throttled] == ["ann", "ann"]
    assert throttled[0].details["wait_s"] >= 1


def test_one_address_guessing_many_names_is_throttled(engine: Engine, settings: Settings) -> None:
    for n in range(5):
        _try(engine, settings, f"nobody{n}", "wrong", addr="10.9.9.9")
    assert "Too many failed logins" in _try(engine, settings, "ann", PW, addr="10.9.9.9")
    assert _try(engine, settings, "ann", PW, addr="10.9.9.8") == "ok"


def test_the_back_off_doubles_with_each_failure(engine: Engine, settings: Settings) -> None:
    keys = [throttle.user_key("zed")]
    waits = []
    for _ in range(7):
        throttle.record_failure(engine, keys, free=5, base_s=2)
        waits.append(round(throttle.wait_seconds(engine, keys)))
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:] == [2, 4, 8]
    throttle.clear(engine, keys)
    assert throttle.wait_seconds(engine, keys) == 0


def test_a_failed_login_of_an_unknown_user_is_audited_as_unknown_user(
    engine: Engine, settings: Settings
) -> None:
    _try(engine, settings, "hunter2-typed-as-name", "x")
    _try(engine, settings, "ann", "wrong")
    with engine.connect() as conn:
        actors = [e.actor for e in list_events(conn, event="login.failed")]
    assert actors == [UNKNOWN_USER, "ann"]


def test_unknown_and_real_users_take_the_same_time(engine: Engine, settings: Settings) -> None:
    # Interleaved samples; the medians may differ by noise, not by a bcrypt check (~50 ms here).
    real: list[float] = []
    unknown: list[float] = []
    for n in range(12):
        for name, bucket in (("ann", real), (f"ghost{n}", unknown)):
            started = time.perf_counter()
            auth.verify_password(engine, name, "wrong", rounds=auth.dummy_rounds(engine))
            bucket.append(time.perf_counter() - started)
    fast, slow = sorted([statistics.median(real), statistics.median(unknown)])
    assert slow / fast < 1.3, (real, unknown)
    assert fast > 0.01  # a bcrypt check did run for both
