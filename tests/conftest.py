"""Shared fixtures: a clean, migrated database on SQLite and on PostgreSQL, and settings over it.

PostgreSQL tests run when ``NANO_EXPORT_TEST_PG_URL`` names a server (CI always sets it); they fail,
not skip, when that server cannot be reached. Each session creates its own database and drops it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nano_export import keystore, schema
from nano_export.bootstrap import initialize
from nano_export.db import dispose_engines, get_engine
from nano_export.jobs import queue
from nano_export.settings import Settings, get_settings

PG_URL = os.environ.get("NANO_EXPORT_TEST_PG_URL", "")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nano-agent"
FIXTURES = Path(__file__).parent / "fixtures"
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("NANO_EXPORT_TEST_PG_URL must name the PostgreSQL server in CI")
        pytest.skip("NANO_EXPORT_TEST_PG_URL is not set")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"nano_export_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:  # an unreachable server fails here: a failure, not a skip
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        initialize_schema_only(url)
        yield url
    finally:
        queue.stop_embedded()  # exports submitted on PostgreSQL ran on this process's worker
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def initialize_schema_only(url: str) -> None:
    """Run the migrations on ``url``."""
    from nano_export.db import upgrade

    upgrade(get_engine(url))


def _truncate_all(url: str) -> None:
    engine = get_engine(url)
    names = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    keystore.forget()  # the emptied database has no stored signing secret any more


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file, copied for each test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "nano-export.db"
    initialize_schema_only(f"sqlite:///{path}")
    dispose_engines()
    return path


def _fresh_sqlite(template: Path, folder: Path) -> str:
    target = folder / "nano-export.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """URL of an empty, migrated database: a new SQLite file, or the truncated PostgreSQL one."""
    if request.param == "sqlite":
        return _fresh_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("pg_server_url")
    _truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """URL of an empty, migrated SQLite database (for tests that are not about the backend)."""
    return _fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings over the test database, with data, exports and auth under ``tmp_path``."""
    s = get_settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        secret_key=TEST_SECRET,
        chunk_rows=1000,
    )
    initialize(s)
    return s


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    """The engine of the test database."""
    return get_engine(db_url)


@pytest.fixture
def shared_data() -> Path:
    """The real nano-agent evaluation files beside the project; tests skip when absent."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip("shared nano-agent data not present beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto) on loopback for the session; its environment."""
    from s3_server import running_s3_server

    with running_s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as env:
        yield env


@pytest.fixture
def s3_url(s3_env: dict[str, str]) -> str:
    """``s3://BUCKET/exports`` on a fresh bucket of the session's S3 server."""
    from s3_server import new_bucket

    return f"s3://{new_bucket()}/exports"
