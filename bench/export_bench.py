"""Export speed and memory: this engine against the sqlite3 CLI, naive pandas and psql \\copy.

Seeds N executions (default 100,000 and 1,000,000) into a fresh SQLite file and, when a PostgreSQL
URL is given, into a fresh PostgreSQL database; then exports ``evaluation-results`` at the default
privacy level (standard) with each method in its own child process and prints wall time, peak RSS
and file size. Every figure comes from the same run on the same machine.

    python bench/export_bench.py [--rows 100000 1000000] [--pg-url postgresql+psycopg://…/test]
                                 [--skip-sqlite] [--repeat 3]

``--repeat`` runs each database's methods several times over one seeded database (the targets
are judged on every run: a shared machine makes one figure alone misleading). Each run prints the
engine's ratio to the command-line tool and its peak RSS next to the targets: at most 2.0x the
tool (stretch 1.5x) and at most 200 MB. ``--naive`` adds naive pandas on SQLite (slow, ~3 GB).

``psql-copy`` copies the executions table (the target's baseline); ``psql-query`` copies the
export's own SELECT (the join with the metrics, in id order), to show the server's share.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve()
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


# --- methods, each run in a fresh child process ------------------------------------------------

# Linux charges a child the peak RSS of the process it was forked from (the memory image it
# replaces at exec counts), so a tool started from this Python process would report this process's
# size. Tools are started by a bare interpreter (about 10 MB) that reports their own peak.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "out = open(sys.argv[1], 'wb') if sys.argv[1] else None\n"
    "subprocess.run(sys.argv[2:], stdout=out, check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
)
#: Peak RSS (MB) of the last tool run by ``run_tool`` in this process.
TOOL_RSS: list[float] = []


def run_tool(command: list[str], stdout: Path | None = None) -> None:
    """Run a command-line tool through the bare launcher and note its own peak RSS."""
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(stdout or "")]
    proc = subprocess.run([*launcher, *command], capture_output=True, text=True, check=True)
    TOOL_RSS.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)


def method_engine(url: str, out: Path) -> int:
    """nano-export's engine, exactly as the CLI runs it."""
    from nano_export.db import get_engine
    from nano_export.exporter import plan_export, run_export
    from nano_export.models import ExportRequest
    from nano_export.settings import get_settings

    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    result = run_export(
        get_engine(url), plan, out_path=out, secret=SECRET, chunk_rows=get_settings().chunk_rows
    )
    return result.rows


def method_naive_pandas(url: str, out: Path) -> int:
    """pandas read_sql of the whole join, then to_csv: no chunks, no redaction."""
    import pandas as pd

    from nano_export.datasets import get_dataset
    from nano_export.db import get_engine

    with get_engine(url).connect() as conn:
        frame = pd.read_sql(get_dataset("evaluation-results").select(), conn)
    frame.to_csv(out, index=False)
    return len(frame)


def method_sqlite_cli(url: str, out: Path) -> int:
    """The sqlite3 command-line tool dumping the executions table as CSV."""
    db = make_url(url).database
    run_tool(["sqlite3", "-header", "-csv", str(db), "SELECT * FROM executions"], stdout=out)
    return -1


def method_psql_copy(url: str, out: Path) -> int:
    """psql \\copy of the executions table to CSV."""
    u = make_url(url)
    conn = (
        f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username} dbname={u.database}"
    )
    run_tool(["psql", conn, "-q", "-c", f"\\copy executions TO '{out}' WITH (FORMAT csv, HEADER)"])
    return -1


def method_psql_copy_query(url: str, out: Path) -> int:
    """psql \\copy of the export's own SELECT (the join, in id order; values unformatted).

    Not a target, a reference: how long the server takes to produce the rows this export reads.
    """
    from nano_export import pgcopy
    from nano_export.datasets import get_dataset
    from nano_export.db import get_engine

    u = make_url(url)
    with get_engine(url).connect() as conn:
        query = pgcopy.select_sql(conn, get_dataset("evaluation-results").select(raw=True))
    conn_str = (
        f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username} dbname={u.database}"
    )
    one_line = " ".join(query.split())
    run_tool(
        ["psql", conn_str, "-q", "-c", f"\\copy ({one_line}) TO '{out}' WITH (FORMAT csv, HEADER)"]
    )
    return -1


METHODS = {
    "engine": method_engine,
    "naive-pandas": method_naive_pandas,
    "sqlite3-cli": method_sqlite_cli,
    "psql-copy": method_psql_copy,
    "psql-query": method_psql_copy_query,
}


def child(method: str, url: str, out: str) -> None:
    """Run one method and print its figures as JSON.

    Libraries are imported before the clock starts: the figures compare export work, not imports.
    A command-line tool's RSS is the tool's own (see ``run_tool``), not this Python process's.
    """
    if method == "engine":  # what an export loads; pandas is not among it (a test checks)
        import nano_export.exporter

        if url.startswith("postgresql"):
            import nano_export.pgcopy
    elif method in ("naive-pandas", "psql-query"):
        import pandas  # noqa: F401

        import nano_export.exporter  # noqa: F401
    start = time.perf_counter()
    rows = METHODS[method](url, Path(out))
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rss = TOOL_RSS[-1] if TOOL_RSS else max(own, kids) / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss, "rows": rows}))


def measure(method: str, url: str, folder: Path) -> dict[str, float]:
    """Run ``method`` in a child process and return its figures plus the file size."""
    out = folder / f"{method}.csv"
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", method, url, str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["mb"] = out.stat().st_size / 1e6
    out.unlink()
    return figures


def seed(url: str, rows: int) -> float:
    """Seed ``rows`` executions in a child process; returns seconds."""
    code = (
        "from nano_export.db import get_engine, upgrade\n"
        "from nano_export.seed import seed_database\n"
        f"e = get_engine({url!r}); upgrade(e); seed_database(e, rows={rows}, seed=1)"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


#: The targets (issue "speed near the limit"): the engine's wall time as a multiple of the
#: command-line tool's in the same run, and its peak RSS.
TARGET_RATIO = 2.0
STRETCH_RATIO = 1.5
TARGET_RSS_MB = 200.0


def report(label: str, rows: int, results: dict[str, dict[str, float]], baseline: str) -> None:
    """Print one table of figures, with times relative to ``baseline``."""
    base = results[baseline]["wall"]
    print(f"\n{label}, {rows:,} executions (evaluation-results, privacy standard)")
    print(
        f"  {'method':<14} {'wall s':>8} {'x ' + baseline:>16} {'peak RSS MB':>12} {'file MB':>9}"
    )
    for name, f in results.items():
        print(
            f"  {name:<14} {f['wall']:>8.2f} {f['wall'] / base:>16.2f} "
            f"{f['rss_mb']:>12.0f} {f['mb']:>9.1f}"
        )
    engine = results["engine"]
    ratio = engine["wall"] / base
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    stretch = "met" if ratio <= STRETCH_RATIO else "not met"
    rss = "met" if engine["rss_mb"] <= TARGET_RSS_MB else "NOT met"
    print(
        f"  target: engine <= {TARGET_RATIO}x {baseline}: {ratio:.2f}x, {verdict} "
        f"(stretch {STRETCH_RATIO}x: {stretch}); peak RSS <= {TARGET_RSS_MB:.0f} MB: "
        f"{engine['rss_mb']:.0f} MB, {rss}",
        flush=True,
    )
    if "psql-query" in results:  # the server's own share: the export's join, copied by psql
        print(
            f"  for reference: engine {engine['wall'] / results['psql-query']['wall']:.2f}x "
            "psql-query (the export's own SELECT)",
            flush=True,
        )


def runs(
    label: str,
    rows: int,
    url: str,
    folder: Path,
    methods: tuple[str, ...],
    repeat: int,
    baseline: str,
    once: tuple[str, ...] = (),
) -> dict[str, float]:
    """Measure ``methods`` ``repeat`` times (``once`` only in the first run); returns the
    engine's figures of the last run."""
    results: dict[str, dict[str, float]] = {}
    for attempt in range(max(1, repeat)):
        chosen = methods + (once if attempt == 0 else ())
        results = {m: measure(m, url, folder) for m in chosen}
        report(label if repeat <= 1 else f"{label} #{attempt + 1}", rows, results, baseline)
    return results["engine"]


def main() -> None:
    """Parse arguments and run every benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--pg-url", default=os.environ.get("NANO_EXPORT_TEST_PG_URL", ""))
    parser.add_argument(
        "--skip-sqlite", action="store_true", help="benchmark PostgreSQL only (needs --pg-url)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each database's methods this many times"
    )
    parser.add_argument(
        "--naive", action="store_true", help="also time naive pandas on SQLite (slow, ~3 GB)"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(tempfile.mkdtemp(prefix="nano-export-bench-"))
    engine_rss: dict[str, list[float]] = {}
    try:
        for rows in args.rows:
            if not args.skip_sqlite:
                url = f"sqlite:///{folder / f'bench-{rows}.db'}"
                took = seed(url, rows)
                print(f"seeding {rows:,} executions into SQLite: {took:.1f} s", flush=True)
                once = ("naive-pandas",) if args.naive else ()
                engine = runs(
                    "SQLite",
                    rows,
                    url,
                    folder,
                    ("sqlite3-cli", "engine"),
                    args.repeat,
                    "sqlite3-cli",
                    once,
                )
                engine_rss.setdefault("SQLite", []).append(engine["rss_mb"])
                (folder / f"bench-{rows}.db").unlink()
            if args.pg_url:
                admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
                name = f"nano_export_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                pg = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
                try:
                    print(f"seeding {rows:,} executions into PostgreSQL: {seed(pg, rows):.1f} s")
                    engine = runs(
                        "PostgreSQL",
                        rows,
                        pg,
                        folder,
                        ("psql-copy", "psql-query", "engine"),
                        args.repeat,
                        "psql-copy",
                    )
                    engine_rss.setdefault("PostgreSQL", []).append(engine["rss_mb"])
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
        if len(args.rows) > 1:
            for db, values in engine_rss.items():
                print(
                    f"\n{db}: engine peak RSS at {args.rows[-1]:,} rows is "
                    f"{values[-1] / values[0]:.2f}x that at {args.rows[0]:,} rows (target: flat, "
                    "at most 1.25x)"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
