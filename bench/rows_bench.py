"""Time one page of the Rows page (``rows.rows_page``) on a seeded database, per sort.

Usage: python bench/rows_bench.py --db-url URL [--runs 3] [--page 3] [--search WORD] [--join-sort]

URL names a seeded database (``nano-export seed --rows N``). For each sort (none, cost up and
down, start time down, latency down) it prints the best of ``--runs`` timings of a page of 100
evaluation-results rows at privacy standard, and the first row's id. ``--search`` adds one run
of a text search (a full scan: slow on large databases). ``--join-sort`` times the query that
sorts the whole join (what a page sorted by cost did before it walked the cost index, and still
does when an execution lacks its metrics row).
"""

from __future__ import annotations

import argparse
import time

from nano_export import rows
from nano_export.db import get_engine
from nano_export.models import FilterSpec

SORTS: list[tuple[str | None, bool]] = [
    (None, False),
    ("cost_usd", False),
    ("cost_usd", True),
    ("started_at", True),
    ("execution_time_s", True),
]
SECRET = "rows-bench-secret-0123456789abcdef0123456789"


def main() -> None:
    """Time the pages and print one line per sort."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--search", default=None)
    parser.add_argument("--join-sort", action="store_true")
    args = parser.parse_args()
    if args.join_sort:
        rows._metrics_cover_every_execution = lambda conn: False  # type: ignore[assignment]
    engine = get_engine(args.db_url)
    spec = FilterSpec()
    for sort, descending in SORTS:
        best = float("inf")
        first = None
        for _ in range(args.runs):
            began = time.perf_counter()
            found = rows.rows_page(
                engine,
                dataset="evaluation-results",
                spec=spec,
                level="standard",
                secret=SECRET,
                page=args.page,
                sort=sort,
                descending=descending,
            )
            best = min(best, time.perf_counter() - began)
            first = found.rows["execution_id"].iloc[0] if not found.rows.empty else None
        label = f"{sort or 'id'} {'desc' if descending else 'asc'}"
        print(f"{label:<24} {best:7.3f} s  first row {first}  of {found.total:,}", flush=True)
    if args.search:
        began = time.perf_counter()
        found = rows.rows_page(
            engine,
            dataset="evaluation-results",
            spec=spec,
            level="standard",
            secret=SECRET,
            search=args.search,
        )
        took = time.perf_counter() - began
        print(f"search {args.search!r:<16} {took:7.3f} s  {found.total:,} rows", flush=True)


if __name__ == "__main__":
    main()
