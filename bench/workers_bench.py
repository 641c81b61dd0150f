"""Exports on the worker pool (PostgreSQL): ten users over one worker process, then over two.

Creates a fresh PostgreSQL database on the server named by --pg-url, seeds N executions (default
300,000), then for each worker count starts that many ``nano-export worker`` processes, submits one
``performance-metrics`` export per user at once, and waits for all of them. Every file is checked:
row count and sha256 equal to its export record. Prints the wall time per worker count and their
ratio, then the time from submit to the first progress of a 10,000-row export on an idle worker.

    python bench/workers_bench.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        [--rows 300000] [--users 10] [--workers 1,2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from nano_export import jobs
from nano_export.db import dispose_engines, get_engine
from nano_export.models import ExportRecord, ExportRequest, FilterSpec
from nano_export.schema import exports
from nano_export.settings import Settings, get_settings

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def run(env: dict[str, str], *args: str) -> None:
    """One ``nano-export`` command, failing loudly."""
    subprocess.run([sys.executable, "-m", "nano_export", *args], env=env, check=True)


def start_workers(
    env: dict[str, str], count: int, concurrency: int, logs: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``count`` worker processes and wait until each has started."""
    command = [
        sys.executable,
        "-m",
        "nano_export",
        "-v",
        "worker",
        "--concurrency",
        str(concurrency),
    ]
    procs = []
    for n in range(count):
        log = logs / f"worker-{count}-{n}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        procs.append((proc, log))
    for proc, log in procs:
        while "Starting worker on" not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise SystemExit(f"worker exited:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    return procs


def stop_workers(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """SIGTERM each worker (by its PID) and wait for it."""
    for proc, _ in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, _ in procs:
        proc.wait(timeout=120)


def check(rec: ExportRecord) -> None:
    """The file is complete: its rows and sha256 are those of its record."""
    path = Path(rec.file_path or "")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if rec.status != "succeeded" or rows != rec.rows_done or digest != rec.sha256:
        raise SystemExit(f"export {rec.id}: {rec.status}, {rows} rows, sha256 mismatch or error")


def ten_users(settings: Settings, users: int) -> float:
    """Submit one export per user at once; wall time until the last one succeeded."""
    engine = get_engine(settings.db_url)
    started = time.perf_counter()
    recs = [
        jobs.submit_export(
            engine,
            settings,
            user=f"user{n}",
            role="analyst",
            request=ExportRequest(dataset="performance-metrics"),
            interface="api",
        )
        for n in range(users)
    ]
    done = [jobs.wait_for(engine, rec.id, timeout=3600) for rec in recs]
    wall = time.perf_counter() - started
    for rec in done:
        check(rec)
        Path(rec.file_path or "").unlink()
    return wall


def first_progress(settings: Settings) -> float:
    """Seconds from submit to the first progress written by a waiting worker (10,000 rows)."""
    engine = get_engine(settings.db_url)
    started = time.perf_counter()
    rec = jobs.submit_export(
        engine,
        settings,
        user="quick",
        role="analyst",
        request=ExportRequest(
            dataset="performance-metrics", filters=FilterSpec(where="execution_id <= 10000")
        ),
        interface="api",
    )
    while True:
        with engine.connect() as conn:
            done = conn.execute(select(exports.c.rows_done).where(exports.c.id == rec.id))
            if done.scalar_one():
                break
        time.sleep(0.005)
    took = time.perf_counter() - started
    check(jobs.wait_for(engine, rec.id, timeout=600))
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("NANO_EXPORT_TEST_PG_URL", ""))
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if not args.pg_url:
        raise SystemExit("--pg-url (or NANO_EXPORT_TEST_PG_URL) must name a PostgreSQL server")
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    name = f"nano_export_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
    folder = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANO_EXPORT_")}
    env.update(
        NANO_EXPORT_DATABASE_URL=url,
        NANO_EXPORT_DATA_DIR=str(folder / "data"),
        NANO_EXPORT_SECRET_KEY=SECRET,
        NANO_EXPORT_EMBEDDED_WORKER="false",
    )
    settings = get_settings(
        database_url=url, data_dir=folder / "data", secret_key=SECRET, embedded_worker=False
    )
    try:
        run(env, "init")
        seeded = time.perf_counter()
        run(env, "seed", "--rows", str(args.rows))
        print(f"seeded {args.rows:,} executions in {time.perf_counter() - seeded:.1f} s")
        walls: dict[int, float] = {}
        for count in (int(n) for n in args.workers.split(",")):
            procs = start_workers(env, count, args.concurrency, folder)
            try:
                walls[count] = ten_users(settings, args.users)
                if count == 1:
                    latency = first_progress(settings)
                    print(f"submit → first progress, 10,000 rows, idle worker: {latency:.2f} s")
            finally:
                stop_workers(procs)
            print(
                f"{args.users} users × {args.rows:,} rows, {count} worker process(es) × "
                f"{args.concurrency}: {walls[count]:.1f} s, every file complete"
            )
        if len(walls) == 2:
            (a, ta), (b, tb) = sorted(walls.items())
            print(f"wall time ratio {a} → {b} workers: {ta / tb:.2f}× ({os.cpu_count()} cores)")
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
