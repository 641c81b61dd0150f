"""First-run setup for ``make run``: schema, demo data and a demo admin login when empty."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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

    The admin is created only when the users table has no user at all; its random password is
    written to ``demo-login.txt`` in the data folder so that it can be shown again.
    """
    initialize(settings)
    engine = get_engine(settings.db_url)
    existing = execution_count(engine)
    seeded = 0
    if existing == 0:
        seeded = seed_database(engine, rows=rows, seed=seed, progress=progress).rows_written
    path = login_file(settings)
    if not load_users(engine):
        password = secrets.token_urlsafe(12)
        add_user(
            engine,
            username=DEMO_USER,
            role="admin",
            password=password,
            min_length=settings.password_min_length,
            rounds=settings.bcrypt_rounds,
            actor="demo",
        )
        write_private(path, f"{DEMO_USER}\n{password}\n")
    if path.is_file():
        user, password = [*path.read_text().splitlines(), "", ""][:2]
        if user in load_users(engine):
            return DemoReport(seeded, existing, path, user, password)
    return DemoReport(seeded, existing, None, None, None)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file readable by its owner only, from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
