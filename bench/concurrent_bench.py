"""Ten users exporting at once: every file must be complete and match its export record.

Seeds N executions (default 300,000) into a fresh SQLite file (and a fresh PostgreSQL database with
--pg-url), then starts one ``nano-export export evaluation-results`` process per user at the same
moment, waits for all, and checks each file: exit code 0, row count = N, bytes and sha256 equal to
the export record. Prints wall time per process and in all, and each process's peak RSS.

    python bench/concurrent_bench.py [--rows 300000] [--users 10] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

WORKER = """
import json, resource, sys, time
from pathlib import Path
from nano_export.cli import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
start = time.perf_counter()
try:
    main(sys.argv[2:], prog_name="nano-export", standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code or 0
except Exception as exc:
    print(repr(exc), file=sys.stderr)
    code = 1
# VmHWM is this process's own peak: ru_maxrss would count the parent's size at exec.
status = Path("/proc/self/status").read_text()
hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
rss = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"code": code, "wall": time.perf_counter() - start, "rss_mb": rss}))
"""


def prepare(url: str, folder: Path, rows: int, users: int) -> dict[str, str]:
    """Seed the database, write the users file; returns the environment of the workers."""
    env = {
        **os.environ,
        "NANO_EXPORT_DATA_DIR": str(folder / "data"),
        "NANO_EXPORT_DATABASE_URL": url,
        "NANO_EXPORT_SECRET_KEY": "bench-secret-0123456789abcdef0123456789abcdef",
        "NANO_EXPORT_MAX_CONCURRENT_EXPORTS": "3",
    }
    code = (
        "from nano_export.bootstrap import initialize\n"
        "from nano_export.settings import get_settings\n"
        "from nano_export.db import get_engine\n"
        "from nano_export.seed import seed_database\n"
        "from nano_export.auth import add_user\n"
        "s = get_settings(); initialize(s)\n"
        f"seed_database(get_engine(s.db_url), rows={rows}, seed=3)\n"
        f"for n in range({users}):\n"
        "    add_user(get_engine(s.db_url), username=f'user{n}', role='analyst',"
        " password='bench-password')\n"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    print(f"  seeded {rows:,} executions in {time.perf_counter() - start:.1f} s", flush=True)
    return env


def run(label: str, url: str, rows: int, users: int) -> bool:
    """Start every user's export at once and check every file; True when all are complete."""
    folder = Path(tempfile.mkdtemp(prefix="nano-export-concurrent-"))
    try:
        print(f"\n{label}: {users} users x {rows:,} rows of evaluation-results", flush=True)
        env = prepare(url, folder, rows, users)
        go = folder / "go"
        procs = []
        for n in range(users):
            out = folder / f"user{n}.csv"
            args = ["export", "evaluation-results", "--user", f"user{n}", "--out", str(out)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(go), *args],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(5)  # every worker has imported the package and waits
        start = time.perf_counter()
        go.touch()
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=3600)
            figures = json.loads(stdout.strip().splitlines()[-1])
            figures["stderr"] = stderr.strip()[-300:]
            results.append(figures)
        total = time.perf_counter() - start
        listing = subprocess.run(
            [sys.executable, "-m", "nano_export", "exports", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        records = {r["id"]: r for r in json.loads(listing.stdout)}
        by_sha = {r["sha256"]: r for r in records.values() if r["sha256"]}
        ok = True
        print(f"  {'user':<7} {'exit':>4} {'wall s':>7} {'RSS MB':>7} {'rows':>9}  complete")
        for n, figures in enumerate(results):
            out = folder / f"user{n}.csv"
            complete = False
            count = 0
            if out.exists():
                data = out.read_bytes()
                with out.open(newline="", encoding="utf-8") as fh:
                    count = sum(1 for _ in csv.reader(fh)) - 1
                record = by_sha.get(hashlib.sha256(data).hexdigest())
                complete = (
                    figures["code"] == 0
                    and count == rows
                    and record is not None
                    and record["bytes"] == len(data)
                    and record["rows_done"] == rows
                )
            ok &= complete
            print(
                f"  user{n:<3} {figures['code']:>4} {figures['wall']:>7.1f} "
                f"{figures['rss_mb']:>7.0f} {count:>9,}  {'yes' if complete else 'NO'}"
            )
            if not complete and figures["stderr"]:
                print(f"    {figures['stderr']}")
        print(f"  all {users} exports finished in {total:.1f} s; every file complete: {ok}")
        return ok
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Parse arguments and run the benchmark on SQLite and, optionally, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--pg-url", default=os.environ.get("NANO_EXPORT_TEST_PG_URL", ""))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nano-export-concurrent-db-"))
    ok = run("SQLite", f"sqlite:///{folder / 'bench.db'}", args.rows, args.users)
    shutil.rmtree(folder, ignore_errors=True)
    if args.pg_url:
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        name = f"nano_export_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
            ok &= run("PostgreSQL", url, args.rows, args.users)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
