"""Time the Explore page (a full AppTest run) and its SQL on N seeded executions.

Usage: python bench/explore_bench.py [--rows 1000000] [--dir FOLDER] [--pg-url URL [--keep-pg]]

Seeds a SQLite database once (kept in FOLDER for later runs) and prints, in seconds: each SQL
statement the Explore aggregates run, each public aggregate function, then a cold-cache and a
warm-cache AppTest run of the Explore page. With ``--pg-url`` (a PostgreSQL server URL) it does
the same on a database ``nx_explore_bench_<rows>`` that it creates, seeds and drops afterwards
(``--keep-pg`` keeps it, and reuses it next time, to save the ~2 minutes of seeding).
Wall times are noisy on a shared machine: run it twice.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789"


def main() -> None:
    """Parse the options and bench SQLite, then PostgreSQL when asked."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nx-explore-bench"
    )
    parser.add_argument("--pg-url", help="a PostgreSQL server URL, e.g. postgresql+psycopg://…")
    parser.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    data_dir = args.dir / str(args.rows)
    if not args.skip_sqlite:
        bench(f"sqlite:///{data_dir / 'nano-export.db'}", data_dir, args.rows)
    if args.pg_url:
        with pg_database(args.pg_url, args.rows, keep=args.keep_pg) as url:
            bench(url, args.dir / f"pg-{args.rows}", args.rows)


@contextmanager
def pg_database(server_url: str, rows: int, *, keep: bool) -> Iterator[str]:
    """A database on the server for this bench: created (unless kept from before), then dropped."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nano_export.db import dispose_engines

    name = f"nx_explore_bench_{rows}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists.first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def statement_timer(engine: Any) -> Iterator[list[tuple[str, float]]]:
    """Collect (first words of the SQL, seconds) for each statement run on ``engine``."""
    from sqlalchemy import event

    timings: list[tuple[str, float]] = []
    began: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        began[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        elapsed = time.perf_counter() - began.pop(id(cursor), time.perf_counter())
        timings.append((" ".join(statement.split())[:60], elapsed))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield timings
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def bench(db_url: str, data_dir: Path, rows: int) -> None:
    """Seed ``db_url`` up to ``rows`` executions, then time the aggregates and the page."""
    os.environ.update(
        NANO_EXPORT_DATA_DIR=str(data_dir),
        NANO_EXPORT_DATABASE_URL=db_url,
        NANO_EXPORT_SECRET_KEY=SECRET,
        NANO_EXPORT_LOGIN_SLEEP_TIME="0",
    )
    from streamlit.testing.v1 import AppTest

    from nano_export import auth, queries
    from nano_export.bootstrap import initialize
    from nano_export.db import execution_count, get_engine
    from nano_export.models import FilterSpec
    from nano_export.seed import seed_database
    from nano_export.settings import get_settings

    settings = get_settings()
    began = time.perf_counter()
    initialize(settings)  # migrations: the first run on an older database builds the indexes
    print(f"\n== {get_engine(settings.db_url).dialect.name}: {db_url}")
    print(f"initialize (migrations)          {time.perf_counter() - began:6.2f} s")
    engine = get_engine(settings.db_url)
    if execution_count(engine) < rows:
        began = time.perf_counter()
        seed_database(engine, rows=rows)
        print(f"seeded {rows:,} rows in {time.perf_counter() - began:.1f} s")
    if auth.role_of(engine, "bench") is None:
        auth.add_user(engine, username="bench", role="admin", password="bench-password")
    print(f"executions: {execution_count(engine):,}")

    ds, spec = "evaluation-results", FilterSpec()
    if hasattr(queries, "overview"):
        for label, s in [
            ("all rows", spec),
            ("provider=openai", FilterSpec(provider=("openai",))),
            ("where cost_usd > 0.05", FilterSpec(where="cost_usd > 0.05")),
        ]:
            with statement_timer(engine) as timings:
                began = time.perf_counter()
                queries.overview(engine, dataset=ds, spec=s)
                total = time.perf_counter() - began
            print(f"overview, {label:22s} {total:6.2f} s")
            for statement, seconds in timings:
                print(f"    {seconds:6.2f} s  {statement}")
    for name, fn in [
        ("summary (count, sums, median)", queries.summary),
        ("by_model", queries.by_model),
        ("latency_histogram", queries.latency_histogram),
        ("runs_over_time", queries.runs_over_time),
        ("count_rows", queries.count_rows),
    ]:
        began = time.perf_counter()
        fn(engine, dataset=ds, spec=spec)
        print(f"{name:32s} {time.perf_counter() - began:6.2f} s")

    for label in ("Explore, cold cache", "Explore, warm cache"):
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
        at.session_state["authentication_status"] = True
        at.session_state["username"] = "bench"
        at.session_state["name"] = "Bench"
        began = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - began
        assert not at.exception, at.exception
        print(f"{label:32s} {elapsed:6.2f} s  (runs shown: {at.metric[0].value})")
    import streamlit as st

    st.cache_data.clear()  # the next database starts cold too


if __name__ == "__main__":
    main()
