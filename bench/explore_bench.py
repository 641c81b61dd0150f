"""Time the Explore page (a full AppTest run) and its SQL aggregates on N seeded executions.

Usage: python bench/explore_bench.py [--rows 1000000] [--dir FOLDER]
Seeds a SQLite database once (kept in FOLDER for later runs), then prints timings in seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Seed, then time each aggregate and a cold and a warm AppTest run of Explore."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "nx-explore-bench"
    )
    args = parser.parse_args()
    data_dir = args.dir / str(args.rows)
    os.environ.update(
        NANO_EXPORT_DATA_DIR=str(data_dir),
        NANO_EXPORT_DATABASE_URL=f"sqlite:///{data_dir / 'nano-export.db'}",
        NANO_EXPORT_SECRET_KEY="bench-secret-0123456789abcdef0123456789",
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
    initialize(settings)
    engine = get_engine(settings.db_url)
    if execution_count(engine) < args.rows:
        began = time.perf_counter()
        seed_database(engine, rows=args.rows)
        print(f"seeded {args.rows:,} rows in {time.perf_counter() - began:.1f} s")
    if auth.role_of(settings.auth_file, "bench") is None:
        auth.add_user(settings.auth_file, username="bench", role="admin", password="bench")
    print(f"executions: {execution_count(engine):,}")

    ds, spec = "evaluation-results", FilterSpec()
    for name, fn in [
        ("summary (count, sums, median)", queries.summary),
        ("by_model", queries.by_model),
        ("latency_histogram", queries.latency_histogram),
        ("runs_over_time", queries.runs_over_time),
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


if __name__ == "__main__":
    main()
