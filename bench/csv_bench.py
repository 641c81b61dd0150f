"""Speed of the CSV writer: 1M evaluation-results rows in chunks of 50,000, several methods.

Run: ``.venv/bin/python bench/csv_bench.py [--rows 1000000] [--chunk 50000] [--only NAME]``.
Chunks look like what ``pandas.read_sql`` yields from SQLite: datetimes as text, booleans as 0/1,
nullable ints as float + NaN, text as pandas' string dtype, two 200–600-character text columns
(some holding commas, quotes, newlines and formula characters). Only the writing is timed; each
method prints wall seconds, rows/s and MB/s of CSV written.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nano_export import csvcells, csvfmt
from nano_export.datasets import EVALUATION_RESULTS

KINDS = EVALUATION_RESULTS.kinds()
COLUMNS = list(EVALUATION_RESULTS.column_names)
SENTENCE = (
    'the agent read file, wrote "quoted" output and listed the directory; then it called '
    "a tool named read_file with path=/home/dev/project/main.py and got 42 lines back. "
    "Capital of France is Paris. = + - @ are fine inside text.\n"
)
WORDS = SENTENCE.split(" ")


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    pool = []
    for _ in range(n):
        length = int(rng.integers(30, 90))
        text = " ".join(rng.choice(WORDS, length))
        if rng.random() < 0.02:
            text = "=" + text
        pool.append(text)
    return pool


def _text(values: object) -> pd.Series:
    """Values as pandas' string dtype, as ``read_sql`` yields text in pandas 3."""
    return pd.Series(values, dtype="str")


def chunks(rows: int, size: int, seed: int = 7) -> Iterator[pd.DataFrame]:
    """Realistic chunks of the evaluation-results dataset as read from SQLite."""
    rng = np.random.default_rng(seed)
    prompts, responses = _texts(rng, 3000), _texts(rng, 3000)
    start = datetime(2025, 8, 1, tzinfo=UTC).timestamp()
    done = 0
    while done < rows:
        n = min(size, rows - done)
        ids = np.arange(done + 1, done + n + 1)
        stamps = pd.to_datetime(start + rng.uniform(0, 86400 * 30, n), unit="s")
        stamp_text = stamps.strftime("%Y-%m-%d %H:%M:%S.%f")
        tokens = rng.integers(10, 5000, n).astype(float)
        tokens[rng.random(n) < 0.05] = np.nan
        frame = {
            "execution_id": ids,
            "eval_run_id": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 50, n)),
            "test_id": _text(rng.choice(["basic_1", "file_ops_2", "code_3"], n)),
            "test_name": _text(rng.choice(["Basic", "File ops, read", "Code"], n)),
            "provider": _text(rng.choice(["openai", "anthropic", "ollama"], n)),
            "model": _text(rng.choice(["gpt-5-mini", "claude-opus-4-1-20250805"], n)),
            "started_at": pd.Series(stamp_text, dtype="str"),
            "success": rng.integers(0, 2, n),
            "error": _text(np.where(rng.random(n) < 0.9, None, "timeout, retry").astype(object)),
            "execution_time_s": rng.uniform(0.2, 60, n).round(3),
            "input_tokens": tokens,
            "output_tokens": tokens * 2,
            "total_tokens": tokens * 3,
            "cached_tokens": np.where(rng.random(n) < 0.5, np.nan, 0.0),
            "reasoning_tokens": tokens,
            "cost_usd": rng.uniform(0, 0.05, n).round(6),
            "perf_grade": _text(rng.choice(["S", "A", "B", "C"], n)),
            "speed_grade": _text(rng.choice(["S", "A", "B", "C"], n)),
            "cost_grade": _text(rng.choice(["S", "A", "B", "C"], n)),
            "overall_grade": _text(rng.choice(["S", "A", "B", "C"], n)),
            "rank": rng.integers(1, 10, n),
            "prompt": _text(rng.choice(prompts, n)),
            "response": _text(rng.choice(responses, n)),
            "user": _text(rng.choice(np.array(["alice", "bob", None], dtype=object), n)),
            "session_id": _text(rng.choice(["s1", "s2", "s3"], n)),
            "source": _text(rng.choice(["seed", "import"], n)),
        }
        yield pd.DataFrame(frame, columns=COLUMNS)
        done += n


class Clock:
    """Wall and CPU seconds spent inside ``with clock:`` blocks (CPU: this process, all threads)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


Writer = Callable[[Path], tuple[Clock, int]]


def _timed_sink(rows: int, size: int, *, gzip: bool = False) -> Writer:
    def run(folder: Path) -> tuple[Clock, int]:
        clock = Clock()
        name = "out.csv.gz" if gzip else "out.csv"
        with clock:
            sink = csvfmt.CsvSink(folder / name, columns=COLUMNS, kinds=KINDS, gzip=gzip)
        for df in chunks(rows, size):
            with clock:
                sink.write(df)
        with clock:
            result = sink.commit()
        return clock, result.bytes

    return run


def _timed_formatted(
    rows: int, size: int, write: Callable[[list[pa.Array], io.BufferedWriter], None]
) -> Writer:
    """Arrow cell formatting, then ``write`` turns the formatted columns into CSV."""

    def run(folder: Path) -> tuple[Clock, int]:
        clock = Clock()
        with open(folder / "out.csv", "wb") as out:
            for df in chunks(rows, size):
                with clock:
                    write(csvcells.format_cells(df, KINDS), out)
            size_out = out.tell()
        return clock, size_out

    return run


def _pandas_to_csv(cells: list[pa.Array], out: io.BufferedWriter) -> None:
    frame = pd.DataFrame({c: a.to_pandas() for c, a in zip(COLUMNS, cells, strict=True)})
    out.write(frame.to_csv(index=False, header=False, lineterminator="\r\n").encode())


def _arrow_write_csv(cells: list[pa.Array], out: io.BufferedWriter) -> None:
    table = pa.table(dict(zip(COLUMNS, cells, strict=True)))
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="needed"))


def _stdlib_csv(cells: list[pa.Array], out: io.BufferedWriter) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerows(zip(*(a.to_pylist() for a in cells), strict=True))
    out.write(text.getvalue().encode())


def _stdlib_python(rows: int, size: int) -> Writer:
    """Per-cell Python formatting and csv.writer, as a plain loop would do it."""

    def cell(value: object, kind: str) -> object:
        if value is None or (isinstance(value, float) and value != value):
            return None
        if kind == "int":
            return int(value)  # type: ignore[call-overload]
        if kind == "float":
            return csvcells._plain(float(value))  # type: ignore[arg-type]
        if kind == "bool":
            return "true" if value else "false"
        if kind == "datetime":
            return datetime.fromisoformat(str(value)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return csvfmt.guard_formula(str(value))

    def run(folder: Path) -> tuple[Clock, int]:
        clock = Clock()
        kinds = [KINDS[c] for c in COLUMNS]
        with open(folder / "out.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            for df in chunks(rows, size):
                with clock:
                    for row in df.astype(object).itertuples(index=False):
                        writer.writerow([cell(v, k) for v, k in zip(row, kinds, strict=True)])
            size_out = out.tell()
        return clock, size_out

    return run


def _naive_to_csv(rows: int, size: int) -> Writer:
    """Unformatted ``DataFrame.to_csv`` (wrong format: a lower bound for pandas only)."""

    def run(folder: Path) -> tuple[Clock, int]:
        clock = Clock()
        with open(folder / "out.csv", "wb") as out:
            for df in chunks(rows, size):
                with clock:
                    out.write(df.to_csv(index=False, header=False).encode())
            size_out = out.tell()
        return clock, size_out

    return run


def _format_only(rows: int, size: int) -> Writer:
    def run(folder: Path) -> tuple[Clock, int]:
        clock = Clock()
        for df in chunks(rows, size):
            with clock:
                csvcells.format_cells(df, KINDS)
        return clock, 0

    return run


def _gzip_level(level: int, rows: int, size: int) -> Writer:
    def run(folder: Path) -> tuple[Clock, int]:
        saved, csvfmt.GZIP_LEVEL = csvfmt.GZIP_LEVEL, level
        try:
            return _timed_sink(rows, size, gzip=True)(folder)
        finally:
            csvfmt.GZIP_LEVEL = saved

    return run


def main() -> None:
    """Run every method (or ``--only`` one) and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    rows, size = args.rows, args.chunk
    small = min(rows, 200_000)  # the per-cell Python loop is too slow for the full million
    methods: dict[str, tuple[int, Writer]] = {
        "format cells only (arrow)": (rows, _format_only(rows, size)),
        "CsvSink (arrow format + arrow assembly)": (rows, _timed_sink(rows, size)),
        "arrow format + pandas to_csv": (rows, _timed_formatted(rows, size, _pandas_to_csv)),
        "arrow format + pyarrow write_csv*": (rows, _timed_formatted(rows, size, _arrow_write_csv)),
        "arrow format + stdlib csv.writer": (rows, _timed_formatted(rows, size, _stdlib_csv)),
        "python per-cell + csv.writer": (small, _stdlib_python(small, size)),
        "raw DataFrame.to_csv (wrong format)": (rows, _naive_to_csv(rows, size)),
        "CsvSink gzip level 1": (rows, _gzip_level(1, rows, size)),
        "CsvSink gzip level 3": (rows, _gzip_level(3, rows, size)),
        "CsvSink gzip level 6": (rows, _gzip_level(6, rows, size)),
    }
    print(
        f"{'method':42} {'rows':>9} {'wall s':>8} {'cpu s':>8} {'rows/s':>10} {'MB':>8} {'MB/s':>7}"
    )
    for name, (n, run) in methods.items():
        if args.only and args.only.lower() not in name.lower():
            continue
        with tempfile.TemporaryDirectory() as folder:
            clock, written = run(Path(folder))
        mb, seconds = written / 1e6, clock.wall
        rate = f"{n / seconds:>10,.0f} {mb:>8.1f} {mb / seconds:>7.1f}"
        print(f"{name:42} {n:>9} {seconds:>8.2f} {clock.cpu:>8.2f} {rate}")
    print("* pyarrow write_csv quotes every string and header (not minimal RFC 4180 quoting)")


if __name__ == "__main__":
    main()
