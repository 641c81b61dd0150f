"""Schema and migrations behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from nano_export import schema
from nano_export.bootstrap import initialize
from nano_export.db import get_engine, upgrade
from nano_export.pricing import PRICES, compute_costs
from nano_export.settings import Settings


def test_migrations_create_every_table_and_are_idempotent(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)  # second run: nothing to do, no error
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in schema.metadata.sorted_tables} <= tables


def test_initialize_stores_the_pricing_table_once(settings: Settings) -> None:
    initialize(settings)
    engine = get_engine(settings.db_url)
    with engine.connect() as conn:
        models = conn.execute(select(schema.model_pricing.c.model)).scalars().all()
    assert sorted(models) == sorted(p.model for p in PRICES)


def test_costs_follow_the_pricing_table() -> None:
    costs = compute_costs("claude-opus-4-1-20250805", input_tokens=1298, output_tokens=213)
    assert costs is not None
    assert costs.cost_usd == 0.035445  # the value in nano-agent's own evaluation table
    cached = compute_costs("gpt-5", input_tokens=1000, output_tokens=0, cached_tokens=1000)
    assert cached is not None
    assert cached.cached_savings_usd == round(1000 * (1.25 - 0.125) / 1e6, 6)
    assert compute_costs("unknown-model", input_tokens=1, output_tokens=1) is None


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask 022, under which a file created without care is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_a_new_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nano-export.db"
    engine = get_engine(f"sqlite:///{path}")
    upgrade(engine)
    assert _mode(path) == 0o600
    with engine.connect() as conn:  # WAL and shared-memory files exist while a connection is open
        conn.execute(select(schema.executions.c.id)).all()
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                assert _mode(side) == 0o600, suffix


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_sqlite_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    upgrade(get_engine(f"sqlite:///{path}"))
    assert _mode(path) == 0o640
