"""Shared set-up for the dashboard's AppTest tests: a data folder, users and known rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from ui_data import insert_rows

from nano_export import auth, sessions
from nano_export.bootstrap import initialize
from nano_export.db import get_engine
from nano_export.settings import Settings, get_settings
from nano_export.ui import session

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = str(ROOT / "dashboard.py")
PASSWORD = "correct horse"
USERS = {"vera": "viewer", "anna": "analyst", "adam": "admin"}


@dataclass
class Dash:
    """A prepared dashboard environment."""

    settings: Settings

    def app(self) -> AppTest:
        """A fresh AppTest of the dashboard script."""
        return AppTest.from_file(DASHBOARD, default_timeout=30)

    def logged_in(self, username: str) -> AppTest:
        """An AppTest whose session is already logged in as ``username`` (not about login)."""
        at = self.app()
        engine = get_engine(self.settings.db_url)
        user = auth.get_user(engine, username)
        assert user is not None, username
        at.session_state["authentication_status"] = True
        at.session_state["username"] = username
        at.session_state["name"] = username.title()
        at.session_state[session.SID] = sessions.start_session(
            engine, user_id=user.id, max_age_h=self.settings.session_max_age_h
        )
        return at


def make_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str | None = None) -> Dash:
    """Data folder with a database (SQLite unless ``db_url`` names an empty, migrated one), rows
    and three users, wired through the environment."""
    data = tmp_path / "data"
    env = {
        "NANO_EXPORT_DATA_DIR": str(data),
        "NANO_EXPORT_DATABASE_URL": db_url or f"sqlite:///{data / 'nano-export.db'}",
        "NANO_EXPORT_SECRET_KEY": "dashboard-test-secret-0123456789abcdef0123",
        "NANO_EXPORT_LOGIN_SLEEP_TIME": "0",
        "NANO_EXPORT_CHUNK_ROWS": "100",
        # No background scheduler in the test process: tests run schedules when they mean to.
        "NANO_EXPORT_EMBEDDED_WORKER": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    initialize(settings)
    insert_rows(get_engine(settings.db_url))
    engine = get_engine(settings.db_url)
    for name, role in USERS.items():
        auth.add_user(engine, username=name, role=role, password=PASSWORD, rounds=4)
    return Dash(settings=settings)
