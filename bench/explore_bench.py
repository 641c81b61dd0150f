"""Time the Explore page (full AppTest runs) and its SQL on N seeded executions, next to targets.

Usage: python bench/explore_bench.py [--rows 1000000] [--dir FOLDER] [--runs 3]
                                     [--pg-url URL [--keep-pg]] [--skip-sqlite]

Seeds a SQLite database once (kept in FOLDER for later runs) and prints, in seconds:

- the SQL statements of ``queries.overview`` on the database (no in-memory columns), for all rows,
  a provider + date filter and a free-text ``where``;
- loading the in-memory columns (``columnar``) from scratch, and what they take in memory;
- the Explore page, for all rows and for the provider + date filter, ``--runs`` times each: cold
  (nothing in Streamlit's cache; the columns are loaded and fresh) and warm (a new session, same
  filter), each with its target (cold < 1 s, warm < 0.3 s), and where the cold run spent its time;
- the first view after a start (columns not loaded yet), and a free-text ``where`` (SQL fallback).

With ``--pg-url`` (a PostgreSQL server URL) it does the same on a database
``nx_explore_bench_<rows>`` that it creates, seeds and drops afterwards (``--keep-pg`` keeps it, and
reuses it next time, to save the minutes of seeding). Wall times are noisy on a shared machine:
run it twice.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789"
COLD_TARGET_S, WARM_TARGET_S = 1.0, 0.3
FREE_TEXT_WHERE = "response ~ 'Washington'"
# Streamlit warns on every page run outside a server ("missing ScriptRunContext"): keep the
# figures readable.
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")


def main() -> None:
    """Parse the options and bench SQLite, then PostgreSQL when asked."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nx-explore-bench"
    )
    parser.add_argument("--runs", type=int, default=3, help="cold and warm page runs per filter")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL, e.g. postgresql+psycopg://…")
    parser.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    data_dir = args.dir / str(args.rows)
    if not args.skip_sqlite:
        bench(f"sqlite:///{data_dir / 'nano-export.db'}", data_dir, args.rows, args.runs)
    if args.pg_url:
        with pg_database(args.pg_url, args.rows, keep=args.keep_pg) as url:
            bench(url, args.dir / f"pg-{args.rows}", args.rows, args.runs)


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


@contextmanager
def call_timer(targets: dict[str, tuple[Any, str]]) -> Iterator[dict[str, float]]:
    """Seconds spent in each named module function while the block runs (wrapped, then restored)."""
    spent: dict[str, float] = dict.fromkeys(targets, 0.0)
    originals: list[tuple[Any, str, Callable[..., Any]]] = []
    for label, (module, attr) in targets.items():
        fn = getattr(module, attr)
        originals.append((module, attr, fn))

        def timed(*a: Any, _fn: Callable[..., Any] = fn, _label: str = label, **kw: Any) -> Any:
            began = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                spent[_label] += time.perf_counter() - began

        setattr(module, attr, timed)
    try:
        yield spent
    finally:
        for module, attr, fn in originals:
            setattr(module, attr, fn)


def verdict(seconds: float, target: float) -> str:
    """The time next to its target: ``0.42 s  (target < 1 s: ok)``."""
    return f"{seconds:6.2f} s  (target < {target:g} s: {'ok' if seconds < target else 'MISSED'})"


def bench(db_url: str, data_dir: Path, rows: int, runs: int) -> None:
    """Seed ``db_url`` up to ``rows`` executions, then time the aggregates and the page."""
    os.environ.update(
        NANO_EXPORT_DATA_DIR=str(data_dir),
        NANO_EXPORT_DATABASE_URL=db_url,
        NANO_EXPORT_SECRET_KEY=SECRET,
        NANO_EXPORT_LOGIN_SLEEP_TIME="0",
        NANO_EXPORT_EMBEDDED_WORKER="false",
    )
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from nano_export import auth, queries, sessions
    from nano_export.bootstrap import initialize
    from nano_export.db import execution_count, get_engine
    from nano_export.errors import QueryTimeout
    from nano_export.models import FilterSpec
    from nano_export.seed import seed_database
    from nano_export.settings import get_settings
    from nano_export.ui import session

    try:
        from nano_export import columnar
    except ImportError:  # the branch before the in-memory columns
        columnar = None  # type: ignore[assignment]

    settings = get_settings()
    began = time.perf_counter()
    initialize(settings)  # migrations: the first run on an older database builds the indexes
    engine = get_engine(settings.db_url)
    print(f"\n== {engine.dialect.name}: {engine.url.render_as_string()}")
    print(f"initialize (migrations)          {time.perf_counter() - began:6.2f} s")
    if execution_count(engine) < rows:
        began = time.perf_counter()
        seed_database(engine, rows=rows)
        print(f"seeded {rows:,} rows in {time.perf_counter() - began:.1f} s")
    if auth.role_of(engine, "bench") is None:
        auth.add_user(engine, username="bench", role="admin", password="bench-password")
    bench_user = auth.get_user(engine, "bench")
    assert bench_user is not None
    print(f"executions: {execution_count(engine):,}")

    since = (datetime.now(UTC) - timedelta(days=30)).date()
    ds = "evaluation-results"
    specs = {
        "all rows": (FilterSpec(), {}),
        "provider + date": (
            FilterSpec(provider=("openai",), since=since),
            {"provider": "openai", "since": since.isoformat()},
        ),
        "free-text where": (FilterSpec(where=FREE_TEXT_WHERE), {"where": FREE_TEXT_WHERE}),
    }

    print("\n-- queries.overview in SQL (the path without in-memory columns)")
    for label, (spec, _) in specs.items():
        with statement_timer(engine) as timings:
            began = time.perf_counter()
            try:
                if columnar is not None:
                    queries.sql_overview(engine, dataset=ds, spec=spec)
                else:
                    queries.overview(engine, dataset=ds, spec=spec)
                note = ""
            except QueryTimeout as exc:
                note = f"  ({exc})"
            total = time.perf_counter() - began
        print(f"overview in SQL, {label:16s} {total:6.2f} s{note}")
        for statement, seconds in timings:
            print(f"    {seconds:6.2f} s  {statement}")

    if columnar is not None:
        print("\n-- in-memory columns")
        for attempt in range(2):
            columnar.forget()
            began = time.perf_counter()
            cols = columnar.columns_for(engine)
            elapsed = time.perf_counter() - began
            assert cols is not None
            print(
                f"load from scratch, run {attempt + 1}        {elapsed:6.2f} s  "
                f"({cols.rows:,} rows, {cols.nbytes / 1e6:.0f} MB)"
            )
        for label, (spec, _) in specs.items():
            began = time.perf_counter()
            got = columnar.overview(engine, dataset=ds, spec=spec)
            elapsed = time.perf_counter() - began
            how = "in memory" if got is not None else "SQL fallback (not computed here)"
            print(f"columnar.overview, {label:14s} {elapsed:6.2f} s  ({how})")

    components: list[Any] = []

    def page(params: dict[str, str], *, figures: bool = True) -> tuple[float, AppTest]:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
        if components:
            # A server scans the installed packages for components once; AppTest does it for each
            # new AppTest (~0.3 s here), which no user waits for: share the first one's.
            at._bidi_component_manager = components[0]
        at.session_state["authentication_status"] = True
        at.session_state["username"] = "bench"
        at.session_state["name"] = "Bench"
        at.session_state[session.SID] = sessions.start_session(
            engine, user_id=bench_user.id, max_age_h=settings.session_max_age_h
        )
        for key, value in params.items():
            at.query_params[key] = value
        began = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - began
        assert not at.exception, at.exception
        assert at.metric or not figures, "the Explore page showed no figures"
        if not components:
            components.append(at._bidi_component_manager)
        return elapsed, at

    from nano_export.ui import data as ui_data

    parts = {
        "overview": (queries, "overview"),
        "preview": (queries, "preview"),
        "filter choices": (ui_data, "choices"),
    }
    print("\n-- the Explore page (AppTest, a new session each run)")
    page({})  # imports and the first script compile are not what is measured here
    for label in ("all rows", "provider + date"):
        _, params = specs[label]
        for run in range(1, runs + 1):
            st.cache_data.clear()
            ui_data._chart.clear()  # the figures (st.cache_resource)
            with call_timer(parts) as spent:
                cold, at = page(params)
            warm, _ = page(params)
            shown = at.metric[0].value
            print(f"{label:16s} run {run}: cold {verdict(cold, COLD_TARGET_S)}")
            print(f"{'':16s}        warm {verdict(warm, WARM_TARGET_S)}   (runs shown: {shown})")
            rest = cold - sum(spent.values())
            detail = ", ".join(f"{k} {v:.2f}" for k, v in spent.items())
            print(f"{'':16s}        cold run: {detail}, page and AppTest {rest:.2f} s")
    if columnar is not None:
        columnar.forget()
        st.cache_data.clear()
        ui_data._chart.clear()
        first, _ = page({})
        print(f"first view after a start (columns loaded in it): {first:6.2f} s")
    st.cache_data.clear()
    ui_data._chart.clear()
    elapsed, at = page(specs["free-text where"][1], figures=False)
    outcome = at.metric[0].value + " runs" if at.metric else "; ".join(e.value for e in at.error)
    print(f"free-text where ({FREE_TEXT_WHERE}), cold: {elapsed:6.2f} s (no target): {outcome}")
    st.cache_data.clear()  # the next database starts cold too


if __name__ == "__main__":
    main()
