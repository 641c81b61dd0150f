"""First-run setup for ``make run``: schema, demo data and a demo admin login when empty."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nano_export import audit
from nano_export.auth import add_user, load_users
from nano_export.bootstrap import initialize
from nano_export.db import execution_count, get_engine
from nano_export.seed import seed_database
from nano_export.settings import Settings

DEMO_USER = "admin"


@dataclass(frozen=True)
class DemoReport:
    """What ``prepare_demo`` found and did."""

    seeded_rows: int
    existing_rows: int
    login_file: Path | None
    user: str | None
    password: str | None


def login_file(settings: Settings) -> Path:
    """Where the generated demo password is kept (readable by the owner only)."""
    return settings.data_dir / "demo-login.txt"


def prepare_demo(
    settings: Settings, *, rows: int, seed: int = 0, progress: Callable[[int], None] | None = None
) -> DemoReport:
    """Upgrade the schema; seed ``rows`` executions into an empty database; add a demo admin.

    The admin is created only when the credentials file has no user at all; its random password is
    written to ``demo-login.txt`` in the data folder so that it can be shown again.
    """
    initialize(settings)
    engine = get_engine(settings.db_url)
    existing = execution_count(engine)
    seeded = 0
    if existing == 0:
        seeded = seed_database(engine, rows=rows, seed=seed, progress=progress).rows_written
    path = login_file(settings)
    if not load_users(settings.auth_file):
        password = secrets.token_urlsafe(12)
        add_user(settings.auth_file, username=DEMO_USER, role="admin", password=password)
        with engine.begin() as conn:
            audit.record(
                conn,
                event="user.created",
                actor="demo",
                interface="cli",
                details={"user": DEMO_USER, "role": "admin"},
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{DEMO_USER}\n{password}\n")
        path.chmod(0o600)
    if path.is_file():
        user, password = [*path.read_text().splitlines(), "", ""][:2]
        if user in load_users(settings.auth_file):
            return DemoReport(seeded, existing, path, user, password)
    return DemoReport(seeded, existing, None, None, None)
