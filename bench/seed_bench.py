"""Measure seeding speed: N executions into a fresh SQLite file and a fresh PostgreSQL database.

    python bench/seed_bench.py [--rows 1000000] [--pg-url URL] [--skip-sqlite] [--skip-postgres]

Each database is seeded in a child process (``--child URL``), which reports its own wall time and
peak RSS; the PostgreSQL database is created and dropped here. Prints one line per database.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def child(url: str, rows: int) -> None:
    """Seed ``rows`` into ``url`` (after creating the schema) and print the figures as JSON."""
    from sqlalchemy import func, select

    from nano_export import schema
    from nano_export.db import get_engine, upgrade
    from nano_export.seed import seed_database

    engine = get_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    report = seed_database(engine, rows=rows, seed=0)
    wall = time.perf_counter() - began
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.executions)).scalar_one()
    print(
        json.dumps(
            {
                "rows": report.rows_written,
                "stored": stored,
                "interactions": report.interactions,
                "eval_runs": report.eval_runs,
                "seconds": wall,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(label: str, url: str, rows: int) -> None:
    """Run one child and print its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fig = json.loads(out.strip().splitlines()[-1])
    print(
        f"{label:10s} {fig['rows']:>10,} executions  {fig['interactions']:>10,} interactions  "
        f"{fig['seconds']:7.1f} s  {fig['rows'] / fig['seconds']:>9,.0f} rows/s  "
        f"peak RSS {fig['peak_rss_mb']:6.0f} MB  (stored {fig['stored']:,})",
        flush=True,
    )


def main() -> None:
    """Parse options and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="admin URL of a PostgreSQL server")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return

    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="seed-bench-") as tmp:
            db = Path(tmp) / "bench.db"
            run_child("sqlite", f"sqlite:///{db}", args.rows)
            size = sum(p.stat().st_size for p in Path(tmp).iterdir())
            print(f"{'':10s} database files: {size / 1e6:,.0f} MB")
    if not args.skip_postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        name = f"nano_export_seed_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
            run_child("postgresql", url, args.rows)
            with admin.connect() as conn:
                size = conn.execute(text("SELECT pg_database_size(:n)"), {"n": name}).scalar()
            print(f"{'':10s} database size: {int(size or 0) / 1e6:,.0f} MB")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
