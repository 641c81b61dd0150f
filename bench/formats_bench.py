"""Export formats side by side: wall time, peak RSS and file size of each, against CSV.

Seeds N executions (default 100,000 and 1,000,000) into a fresh SQLite file, then exports
``evaluation-results`` at the default privacy level (standard) in every format, each in its own
child process, and prints wall time, peak RSS and file size with the ratios to CSV from the same
run. With several row counts it also prints each format's peak RSS at the largest count relative
to the smallest (flat memory: within 1.25x). Finally it writes a workbook of 1,048,575 + 10 rows at
Excel's real sheet size and checks that the second sheet holds the header and the last 10 rows.

    python bench/formats_bench.py [--rows 100000 1000000] [--formats csv xlsx ...]
                                  [--repeat 3] [--skip-sheet-check]

``--repeat`` runs every format several times, round by round (so a busy spell of a shared machine
hits all formats alike), and keeps each format's fastest run and its highest peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve()
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
FORMATS = ["csv", "csv.gz", "parquet", "jsonl", "jsonl.gz", "xlsx"]


def child(fmt: str, url: str, out: str) -> None:
    """Export in one format and print the figures as JSON (imports happen before the clock)."""
    import pandas  # noqa: F401

    import nano_export.exporter
    from nano_export.db import get_engine
    from nano_export.formats import open_sink  # noqa: F401
    from nano_export.models import ExportRequest
    from nano_export.settings import get_settings

    if fmt == "xlsx":
        import nano_export.xlsxfmt
    elif fmt == "parquet":
        import nano_export.parquetfmt
    elif fmt.startswith("jsonl"):
        import nano_export.jsonlfmt
    plan = nano_export.exporter.plan_export(
        ExportRequest(dataset="evaluation-results", format=fmt)  # type: ignore[arg-type]
    )
    start = time.perf_counter()
    result = nano_export.exporter.run_export(
        get_engine(url),
        plan,
        out_path=Path(out),
        secret=SECRET,
        chunk_rows=get_settings().chunk_rows,
    )
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss, "rows": result.rows, "sheets": result.sheets}))


def measure(fmt: str, url: str, folder: Path) -> dict[str, float]:
    """Run one format's export in a child process; its figures plus the file size."""
    out = folder / f"bench.{fmt}"
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", fmt, url, str(out)],
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


def report(rows: int, results: dict[str, dict[str, float]]) -> None:
    """One table of figures, with time and size relative to CSV."""
    base = results.get("csv")
    print(f"\nSQLite, {rows:,} executions (evaluation-results, privacy standard)")
    print(
        f"  {'format':<9} {'wall s':>8} {'x csv':>7} {'peak RSS MB':>12} {'file MB':>9} "
        f"{'x csv':>7} {'sheets':>7}"
    )
    for name, f in results.items():
        time_ratio = f"{f['wall'] / base['wall']:.2f}" if base else "-"
        size_ratio = f"{f['mb'] / base['mb']:.2f}" if base else "-"
        sheets = str(int(f["sheets"])) if f.get("sheets") else ""
        print(
            f"  {name:<9} {f['wall']:>8.2f} {time_ratio:>7} {f['rss_mb']:>12.0f} "
            f"{f['mb']:>9.1f} {size_ratio:>7} {sheets:>7}",
            flush=True,
        )


def sheet_check(folder: Path) -> None:
    """A workbook of 1,048,575 + 10 rows at Excel's real sheet size has two sheets, the second
    with the header and the last 10 rows."""
    import pandas as pd
    from openpyxl import load_workbook

    from nano_export.formats import open_sink
    from nano_export.sinkfile import XLSX_SHEET_ROWS

    total = XLSX_SHEET_ROWS + 10
    kinds = {"n": "int", "label": "text"}
    path = folder / "limit.xlsx"
    start = time.perf_counter()
    with open_sink("xlsx", path, columns=list(kinds), kinds=kinds) as sink:  # type: ignore[arg-type]
        for lo in range(0, total, 50_000):
            n = range(lo, min(lo + 50_000, total))
            sink.write(pd.DataFrame({"n": list(n), "label": [f"row {i}" for i in n]}))
        result = sink.commit()
    took = time.perf_counter() - start
    with zipfile.ZipFile(path) as z:
        dims = [
            re.search(rb'<dimension ref="([^"]+)"', z.read(f"xl/worksheets/sheet{i}.xml")[:2000])
            for i in (1, 2)
        ]
    book = load_workbook(path, read_only=True)
    second = list(book.worksheets[1].iter_rows(values_only=True))
    ok = (
        result.sheets == 2
        and len(book.worksheets) == 2
        and dims[0] is not None
        and dims[0].group(1) == b"A1:B1048576"
        and second == [("n", "label"), *[(i, f"row {i}") for i in range(XLSX_SHEET_ROWS, total)]]
    )
    print(
        f"\nxlsx sheet limit: {total:,} rows written in {took:.1f} s as {result.sheets} sheets; "
        f"sheet 1 spans {dims[0].group(1).decode() if dims[0] else '?'} (header + 1,048,575 "
        f"rows), sheet 2 holds the header and {len(second) - 1} rows: {'OK' if ok else 'FAILED'}"
    )
    path.unlink()
    if not ok:
        raise SystemExit(1)


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", default=FORMATS, choices=FORMATS)
    parser.add_argument("--repeat", type=int, default=1, help="runs per format (best is kept)")
    parser.add_argument("--skip-sheet-check", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(tempfile.mkdtemp(prefix="nano-export-formats-"))
    rss: dict[str, list[float]] = {}
    try:
        for rows in args.rows:
            url = f"sqlite:///{folder / f'bench-{rows}.db'}"
            print(f"seeding {rows:,} executions into SQLite: {seed(url, rows):.1f} s", flush=True)
            results: dict[str, dict[str, float]] = {}
            for _round in range(max(1, args.repeat)):
                for fmt in args.formats:
                    run = measure(fmt, url, folder)
                    best = results.setdefault(fmt, run)
                    peak = max(best["rss_mb"], run["rss_mb"])
                    if run["wall"] < best["wall"]:
                        results[fmt] = best = run
                    best["rss_mb"] = peak
            for fmt in args.formats:
                rss.setdefault(fmt, []).append(results[fmt]["rss_mb"])
            report(rows, results)
            (folder / f"bench-{rows}.db").unlink()
        if len(args.rows) > 1:
            print(f"\npeak RSS at {args.rows[-1]:,} rows / at {args.rows[0]:,} rows:")
            for fmt, values in rss.items():
                flat = "flat" if values[-1] <= 1.25 * values[0] else "NOT flat"
                print(f"  {fmt:<9} {values[-1] / values[0]:.2f}x ({flat})")
        if not args.skip_sheet_check:
            sheet_check(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
