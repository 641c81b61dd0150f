"""The export engine: plans, the one redaction path shared by preview and file, size estimates."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from factories import PLANTED, SECRET, insert_executions
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Text,
    create_engine,
    delete,
    func,
    literal,
    select,
    text,
    values,
)
from sqlalchemy import (
    column as sql_column,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.util import find_tables

from nano_export import filters
from nano_export.csvcells import format_frame
from nano_export.datasets import get_dataset
from nano_export.db import get_engine
from nano_export.errors import (
    BadInput,
    ExportCancelled,
    ExportFailed,
    InvalidFilter,
    UnknownDataset,
)
from nano_export.exporter import count_rows, estimate_bytes, plan_export, preview, run_export
from nano_export.exporter import manifest as exporter_manifest
from nano_export.models import ExportRequest, FilterSpec
from nano_export.schema import execution_metrics, executions, interactions

KEY = "exporter-test-secret-0123456789abcdef"


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    eng = get_engine(db_url)
    insert_executions(eng, 60)
    return eng


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


@pytest.mark.parametrize("level", ["public", "standard", "full"])
def test_the_preview_and_the_file_redact_identically(engine, tmp_path: Path, level: str) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy=level))  # type: ignore[arg-type]
    out = tmp_path / "file.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=7)
    shown = format_frame(preview(engine, plan, secret=KEY, limit=60), plan.output_kinds)
    written = _read(out)
    assert len(written) == 60
    for column in ("prompt", "response", "user", "session_id"):
        if column not in plan.output_names:
            continue
        from_preview = ["" if v is None else v for v in shown[column]]
        assert from_preview == [row[column] for row in written], column
    text = out.read_text()
    assert SECRET not in text
    assert ("bob@example.com" in text) == (level == "full")
    assert ("prompt" in written[0]) == (level != "public")


def test_columns_renames_and_order_follow_the_plan(engine, tmp_path: Path) -> None:
    plan = plan_export(
        ExportRequest(
            dataset="performance-metrics",
            columns=["cost_usd", "model", "execution_id"],
            rename={"cost_usd": "cost"},
            filters=FilterSpec(where="execution_id <= 2"),
        )
    )
    out = tmp_path / "m.csv"
    result = run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=100)
    assert out.read_text().splitlines()[0] == "cost,model,execution_id"
    assert result.rows == 2


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (ExportRequest(dataset="nope"), UnknownDataset, "evaluation-results"),
        (ExportRequest(dataset="performance-metrics", columns=["x"]), BadInput, "unknown column"),
        (
            ExportRequest(dataset="performance-metrics", columns=["model", "model"]),
            BadInput,
            "listed twice",
        ),
        (
            ExportRequest(dataset="evaluation-results", privacy="public", columns=["response"]),
            BadInput,
            "free-text",
        ),
        (ExportRequest(dataset="performance-metrics", rename={"x": "y"}), BadInput, "'x'"),
        (ExportRequest(dataset="performance-metrics", rename={"model": " "}), BadInput, "empty"),
        (
            ExportRequest(dataset="performance-metrics", rename={"model": "provider"}),
            BadInput,
            "same name",
        ),
        (
            ExportRequest(dataset="performance-metrics", filters=FilterSpec(where="x ~ '('")),
            InvalidFilter,
            "invalid regular expression",
        ),
    ],
)
def test_bad_plans_name_what_is_wrong(
    request_: ExportRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_export(request_)


def test_public_level_leaves_free_text_out_by_default() -> None:
    plan = plan_export(ExportRequest(dataset="agent-interactions", privacy="public"))
    assert "arguments" not in plan.columns and "result" not in plan.columns
    assert "tool_name" in plan.columns


def test_the_size_estimate_is_close_to_the_real_file(engine, tmp_path: Path) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    out = tmp_path / "e.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=1000)
    estimate = estimate_bytes(engine, plan, secret=KEY, rows=60)
    assert abs(estimate - out.stat().st_size) / out.stat().st_size < 0.02
    assert estimate_bytes(engine, plan, secret=KEY, rows=0) == 0
    empty = plan_export(
        ExportRequest(dataset="evaluation-results", filters=FilterSpec(where="execution_id < 0"))
    )
    assert estimate_bytes(engine, empty, secret=KEY, rows=5) == 0


def test_a_cancelled_run_leaves_nothing_behind(engine, tmp_path: Path) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "c.csv"
    seen: list[int] = []
    with pytest.raises(ExportCancelled):
        run_export(
            engine,
            plan,
            out_path=out,
            secret=KEY,
            chunk_rows=10,
            on_progress=seen.append,
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [10, 20]
    assert list(folder.iterdir()) == []


def test_a_read_error_mid_export_propagates_and_leaves_no_file(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nano_export import exporter

    real = exporter.read_chunks

    def failing(conn, plan, chunk_rows, **kwargs):  # type: ignore[no-untyped-def]
        chunks = real(conn, plan, chunk_rows, **kwargs)
        yield next(chunks)
        raise RuntimeError("connection lost")

    monkeypatch.setattr(exporter, "read_chunks", failing)
    _assert_export_fails_leaving_no_file(engine, tmp_path, "connection lost", chunk_rows=10)


def _assert_export_fails_leaving_no_file(
    engine: Any, tmp_path: Path, message: str, *, chunk_rows: int
) -> None:
    """An export into an empty folder stops with ``message`` and leaves the folder empty: no
    file, no temporary file."""
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(RuntimeError, match=message):
        run_export(engine, plan, out_path=folder / "x.csv", secret=KEY, chunk_rows=chunk_rows)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "spec",
    [
        FilterSpec(),
        FilterSpec(provider=("openai", "ollama"), success=True),
        FilterSpec(since=date(2025, 8, 1), until=date(2025, 8, 1), test=("test_1", "Test 2")),
        FilterSpec(where="cost_usd > 0.0003 and model in ('gpt-5-mini', 'gpt-oss:20b')"),
        FilterSpec(where="response ~ '(?i)ANSWER 1' or started_at >= '2025-08-01T00:30:00Z'"),
        FilterSpec(where="error is not null and not (execution_id in (7, 14))"),
    ],
)
def test_the_file_holds_exactly_the_rows_the_filter_selects(
    engine, tmp_path: Path, spec: FilterSpec
) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results", filters=spec))
    with engine.connect() as conn:
        expected = [row.execution_id for row in conn.execute(plan.statement())]
    out = tmp_path / "f.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=8)
    assert [int(r["execution_id"]) for r in _read(out)] == expected
    assert expected  # every spec above selects something


# --- PostgreSQL: the COPY read path against the SQLAlchemy one -----------------------------------

HOSTILE = [
    "'); DROP TABLE executions; --",
    "O'Brien \\' \\\\ back\\slash",
    '"; DELETE FROM execution_metrics; --',
    "%(param_1)s %s {} $1 ?",
    "ünïcødé — 東京 🚀 E'\\x41'",
]
ODD_TEXT = [
    "",
    "plain",
    "a,b",
    'say "hi"',
    "cr\ronly",
    "lf\nonly",
    "crlf\r\nend\r\n",
    "=SUM(A1)",
    "+1",
    "-2",
    "@x",
    "\ttab",
    "\\.",
    "line\n\\.\nafter",
    "NULL",
    "  spaced  ",
    "ünïcødé — 東京 🚀",
    "back\\slash \\N",
    "x" * 3_000_000,  # one row longer than an Arrow block
    *HOSTILE,
]
ODD_FLOATS = [0.00001, 1e20, -3.25, 0.0, -0.0, 1e-300, 1.7976931348623157e308, 0.1 + 0.2, 2.0]
ODD_TIMES = [
    datetime(2025, 8, 10, 14, 3, 7, 123456, tzinfo=UTC),
    datetime(2025, 8, 10, 14, 3, 7, tzinfo=UTC),
    datetime(2025, 8, 10, 14, 3, 7, 500000, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2100, 1, 1, tzinfo=UTC),
    datetime(2025, 3, 30, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


def _postgres(engine) -> None:  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        pytest.skip("the COPY read path is PostgreSQL's")


def _insert_odd_rows(engine) -> None:  # type: ignore[no-untyped-def]
    """Rows with nulls in every nullable column, odd text, odd floats and odd timestamps."""
    ex, me, it = [], [], []
    for n, text_value in enumerate(ODD_TEXT):
        i = 1000 + n
        full = n % 3 != 2  # every third row leaves every nullable column null
        ex.append(
            {
                "id": i,
                "source_key": f"odd:{i}",
                "test_id": text_value[:100] if full else None,
                "test_name": f"odd {n}" if full else None,
                "provider": HOSTILE[n % len(HOSTILE)] if n % 2 else "openai",
                "model": "gpt-5-mini",
                "started_at": ODD_TIMES[n % len(ODD_TIMES)],
                "success": n % 2 == 0,
                "error": text_value if full else None,
                "execution_time_s": [0.00001, 1e20, -1.5, 0.0, float("nan"), float("inf")][n % 6]
                if full
                else None,
                "prompt": text_value if full else None,
                "response": ODD_TEXT[-1 - n] if full else None,
                "user": text_value[:100] if full else None,
                "session_id": f"sess-{n % 4}" if full else None,
                "source": "odd",
                "perf_grade": "A" if full else None,
                "rank": -n if full else None,
            }
        )
        if n % 4 != 3:  # some executions have no metrics row: every metric is null
            me.append(
                {
                    "execution_id": i,
                    "input_tokens": -n if full else None,
                    "output_tokens": 2**62 + n if n % 5 == 0 else n,
                    "total_tokens": n * 1000,
                    "cached_tokens": None if n % 2 else 0,
                    "reasoning_tokens": None,
                    "input_cost_usd": ODD_FLOATS[n % len(ODD_FLOATS)],
                    "output_cost_usd": -ODD_FLOATS[n % len(ODD_FLOATS)] if full else None,
                    "cached_savings_usd": None,
                    "cost_usd": ODD_FLOATS[(n + 3) % len(ODD_FLOATS)],
                }
            )
        it.append(
            {
                "execution_id": i,
                "seq": n,
                "kind": "tool_call",
                "tool_name": text_value[:100] if full else None,
                "arguments": text_value if full else None,
                "result": ODD_TEXT[-1 - n] if full else None,
                "is_error": n % 2 == 1,
                "duration_s": ODD_FLOATS[n % len(ODD_FLOATS)] if full else None,
                "started_at": ODD_TIMES[(n + 1) % len(ODD_TIMES)],
            }
        )
    with engine.begin() as conn:
        conn.execute(executions.insert(), ex)
        conn.execute(execution_metrics.insert(), me)
        conn.execute(interactions.insert(), it)


#: Every export format at the start of the native-reader work; each is written both ways.
FORMATS = ["csv", "csv.gz", "xlsx", "parquet", "jsonl", "jsonl.gz"]
_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _native_reader(engine):  # type: ignore[no-untyped-def]
    """The module and function name of the native reader of ``engine``'s database."""
    from nano_export import pgcopy, sqlitearrow

    if engine.dialect.name == "sqlite":
        return sqlitearrow, "read_batches"
    return pgcopy, "read_copy"


def _export_both_ways(  # type: ignore[no-untyped-def]
    engine, plan, folder: Path, chunk_rows: int, *, native_runs: bool = True
) -> tuple[bytes, bytes]:
    """The plan written by ``read_sql`` and with the native reader on (which must run unless
    ``native_runs`` is false), at one fixed export time."""
    from nano_export import exporter

    module, name = _native_reader(engine)
    real = getattr(module, name)
    used: list[bool] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        used.append(True)
        yield from real(*args, **kwargs)

    files = []
    for native in (False, True):
        out = folder / str(native) / f"{plan.dataset.name}-{plan.privacy}.{plan.format}"
        out.parent.mkdir(exist_ok=True)  # one file name: gzip's header carries it
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(exporter, "NATIVE_READ", native)
            mp.setattr(module, name, spy)
            mp.setattr(exporter, "manifest", lambda p: exporter_manifest(p, at=_AT))
            run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=chunk_rows)
        files.append(out.read_bytes())
        assert used == ([True] if native and native_runs else []), "native reader ran as expected"
    return files[0], files[1]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "dataset", ["evaluation-results", "performance-metrics", "agent-interactions"]
)
@pytest.mark.parametrize("level", ["full", "standard", "public"])
def test_the_native_reader_writes_the_same_bytes_as_read_sql(
    engine, tmp_path: Path, dataset: str, level: str, fmt: str
) -> None:
    _insert_odd_rows(engine)
    plan = plan_export(ExportRequest(dataset=dataset, privacy=level, format=fmt))  # type: ignore[arg-type]
    old, new = _export_both_ways(engine, plan, tmp_path, chunk_rows=7)
    assert old == new
    if fmt == "csv":
        assert old.count(b"\r\n") > 60 + len(ODD_TEXT)
        if level == "full" and dataset != "performance-metrics":
            assert "東京 🚀".encode() in new and b'"crlf\r\nend\r\n"' in new


@pytest.mark.parametrize(
    "spec",
    [
        FilterSpec(where="execution_id < 0"),  # nothing: a header-only file
        FilterSpec(provider=tuple(HOSTILE)),
        FilterSpec(where="prompt ~ '(?i)a,b|\"|東京' or cost_usd > 0.00005"),
        FilterSpec(since=date(2025, 8, 1), success=True),
    ],
)
def test_native_and_read_sql_paths_agree_under_filters(
    engine, tmp_path: Path, spec: FilterSpec
) -> None:
    _insert_odd_rows(engine)
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy="full", filters=spec))
    # SQLite's `~` is a Python function, which only read_sql's connection has.
    python_function = engine.dialect.name == "sqlite" and "~" in (spec.where or "")
    old, new = _export_both_ways(
        engine, plan, tmp_path, chunk_rows=5, native_runs=not python_function
    )
    assert old == new


def test_the_native_readers_hand_arrow_tables_to_the_policy_and_the_sinks(engine) -> None:
    """No DataFrame copy on the native path: the reader's tables go through as they are."""
    from nano_export import exporter

    _insert_odd_rows(engine)
    plan = plan_export(ExportRequest(dataset="agent-interactions", privacy="standard"))
    with engine.connect() as conn:
        chunks = list(exporter.read_chunks(conn, plan, 4))
    assert len(chunks) > 1 and all(isinstance(chunk, pa.Table) for chunk in chunks)
    safe = exporter.transform(chunks[0], plan, secret=KEY)
    assert isinstance(safe, pa.Table) and safe.column_names == plan.output_names
    assert safe.num_rows == chunks[0].num_rows


def test_hostile_filter_values_reach_the_native_readers_intact(engine, tmp_path: Path) -> None:
    _insert_odd_rows(engine)
    from nano_export import exporter

    quoted = " or ".join(f"test_id = '{v.replace(chr(39), chr(39) * 2)}'" for v in HOSTILE)
    spec = FilterSpec(provider=tuple(HOSTILE), test=tuple(HOSTILE), where=quoted)
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy="full", filters=spec))
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM executions")).scalar_one()
        expected = [row.execution_id for row in conn.execute(plan.statement())]
        chunks = exporter.read_chunks(conn, plan, 2)
        got = [i for chunk in chunks for i in pa.table(chunk)["execution_id"].to_pylist()]
    assert expected and got == expected
    old, new = _export_both_ways(engine, plan, tmp_path, chunk_rows=2)
    assert old == new
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM executions")).scalar_one() == before
        assert conn.execute(text("SELECT count(*) FROM execution_metrics")).scalar_one() > 0


def test_copy_reads_nulls_of_every_kind_like_the_driver(engine) -> None:
    """Nullable bool and timestamp columns do not occur in the schema: check them on literals."""
    _postgres(engine)
    from nano_export import pgcopy
    from nano_export.csvcells import format_cells
    from nano_export.csvfmt import encode_rows

    kinds = {"i": "int", "f": "float", "b": "bool", "t": "datetime", "s": "text"}
    rows = values(
        sql_column("i", BigInteger),
        sql_column("f", Float),
        sql_column("b", Boolean),
        sql_column("t", DateTime(timezone=True)),
        sql_column("s", Text),
        name="v",
    ).data(
        [
            (1, 0.5, True, ODD_TIMES[0], ""),
            (None, None, None, None, None),
            (-(2**40), 1e20, False, ODD_TIMES[1], 'q"uote,\r\n'),
        ]
    )
    stmt = select(rows.c.i, rows.c.f, rows.c.b, rows.c.t, rows.c.s)
    with engine.connect() as conn:
        via_copy = pa.concat_tables(list(pgcopy.read_copy(conn, stmt, kinds, 2))).to_pandas()  # type: ignore[arg-type]
        via_driver = pd.read_sql(stmt, conn)
    assert via_copy["s"][0] == "" and pd.isna(via_copy["s"][1])
    assert via_copy["b"].isna().tolist() == [False, True, False]
    assert bytes(encode_rows(format_cells(via_copy, kinds))) == bytes(  # type: ignore[arg-type]
        encode_rows(format_cells(via_driver, kinds))  # type: ignore[arg-type]
    )


def test_copy_output_does_not_depend_on_session_settings(
    engine, db_url: str, tmp_path: Path
) -> None:
    """Another time zone, date style and float precision on the server session change nothing."""
    _postgres(engine)
    _insert_odd_rows(engine)
    options = "-c TimeZone=Asia/Kolkata -c DateStyle=SQL,DMY -c extra_float_digits=0"
    odd = create_engine(db_url, poolclass=NullPool, connect_args={"options": options})
    try:
        for dataset in ("evaluation-results", "agent-interactions"):
            plan = plan_export(ExportRequest(dataset=dataset, privacy="full"))
            reference, _ = _export_both_ways(engine, plan, tmp_path, chunk_rows=50)
            out = tmp_path / "odd.csv"
            run_export(odd, plan, out_path=out, secret=KEY, chunk_rows=50)
            assert out.read_bytes() == reference
    finally:
        odd.dispose()


def test_closing_the_copy_stream_early_ends_the_copy(engine) -> None:
    _postgres(engine)
    insert_executions(engine, 3000, first_id=100)
    from nano_export import exporter

    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy="full"))
    with engine.connect() as conn:
        chunks = exporter.read_chunks(conn, plan, 10)
        first = next(chunks)
        assert len(first) == 10
        chunks.close()
        conn.rollback()
        raw = conn.connection.dbapi_connection
        assert raw is not None and raw.pgconn.transaction_status == 0  # idle
        assert conn.execute(text("SELECT count(*) FROM executions")).scalar_one() == 3060
    # Nothing is left running on the server either: the reader's query was cancelled and its
    # connection closed (the backend may take a moment to go).
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE query LIKE 'COPY (%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == 0


def test_a_server_error_mid_copy_fails_the_read_with_the_servers_words(engine) -> None:
    _postgres(engine)
    from nano_export import pgcopy

    stmt = select(
        executions.c.id.label("id"),
        (literal(1) / (executions.c.id - 40)).label("boom"),
    ).order_by(executions.c.id)
    with engine.connect() as conn:
        with pytest.raises(ExportFailed, match=r"^PostgreSQL: ERROR: +division by zero$"):
            list(pgcopy.read_copy(conn, stmt, {"id": "int", "boom": "float"}, 10))
        assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the caller's connection is fine


def test_the_copy_path_is_used_only_where_it_can_be(engine) -> None:
    from nano_export import exporter, pgcopy

    plan = plan_export(ExportRequest(dataset="performance-metrics"))
    with engine.connect() as conn:
        assert pgcopy.usable(conn) == (engine.dialect.name == "postgresql")
        if engine.dialect.name != "postgresql":
            return
        # A client encoding other than UTF-8: Arrow could not read the bytes, so the driver path.
        conn.exec_driver_sql("SET LOCAL client_encoding TO 'LATIN1'")
        assert not pgcopy.usable(conn)
        rows = sum(len(c) for c in exporter.read_chunks(conn, plan, 25))
        assert rows == 60
        conn.rollback()
        assert pgcopy.usable(conn)


def test_the_fast_path_connects_with_the_engines_url_password_and_options_included() -> None:
    from sqlalchemy.engine import make_url

    from nano_export import pgcopy

    url = make_url(
        "postgresql+psycopg://ana:p%40ss%2Fw%3Ard@db.internal:6543/evals?sslmode=require"
    )
    uri = pgcopy.libpq_uri(url)
    assert uri == "postgresql://ana:p%40ss%2Fw%3Ard@db.internal:6543/evals?sslmode=require"
    assert make_url(uri).password == "p@ss/w:rd"


def test_the_engine_allocates_with_the_system_allocator_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa

    from nano_export import exporter

    assert pa.default_memory_pool().backend_name == "system"
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
        exporter.use_system_allocator()
        assert pa.default_memory_pool().backend_name == "mimalloc"
    finally:
        pa.set_memory_pool(before)


def test_a_failed_fast_path_connection_names_the_servers_reason(
    engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres(engine)
    from nano_export import pgcopy

    elsewhere = engine.url.set(database="nano_export_no_such_database")
    real = pgcopy.libpq_uri
    monkeypatch.setattr(pgcopy, "libpq_uri", lambda _url: real(elsewhere))
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    with engine.connect() as conn, pytest.raises(ExportFailed) as failed:
        list(pgcopy.read_copy(conn, plan.statement(raw=True), plan.dataset.kinds(), 10))
    assert str(failed.value) == (
        'PostgreSQL: FATAL:  database "nano_export_no_such_database" does not exist'
    )


@pytest.mark.parametrize("level", ["full", "standard"])
def test_the_reader_thread_screens_each_chunk_ahead_of_its_redaction(
    engine, tmp_path: Path, level: str
) -> None:
    """RE2's screen runs outside the GIL: in the reader thread it overlaps the chunk before."""
    import threading

    from nano_export import privacy

    _insert_odd_rows(engine)
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy=level))  # type: ignore[arg-type]
    threads: list[str] = []
    real = privacy.screen_flags

    def spy(df, *, level):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(df, level=level)

    ahead = tmp_path / "ahead.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(privacy, "screen_flags", spy)  # the name the exporter calls
        run_export(engine, plan, out_path=ahead, secret=KEY, chunk_rows=7)
    assert threads and set(threads) == {"export-reader"}
    in_place = tmp_path / "in-place.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(privacy, "screen_flags", lambda df, *, level: None)
        run_export(engine, plan, out_path=in_place, secret=KEY, chunk_rows=7)
    assert ahead.read_bytes() == in_place.read_bytes()


@pytest.mark.parametrize(
    ("where", "reads_metrics"),
    [(None, False), ("provider = 'openai'", False), ("cost_usd > 0.0001", True)],
)
def test_the_row_count_joins_the_metrics_only_when_a_filter_reads_them(
    engine, where: str | None, reads_metrics: bool
) -> None:
    """The export's row count (the progress bar's total, counted before the first row) leaves out
    the outer-joined metrics when no filter reads them: on SQLite the join made an unfiltered
    count of 1M rows take 1.6 s instead of 11 ms. Same count either way, executions without
    metrics included."""
    with engine.begin() as conn:
        conn.execute(delete(execution_metrics).where(execution_metrics.c.execution_id > 50))
    plan = plan_export(ExportRequest(dataset="evaluation-results", filters=FilterSpec(where=where)))
    statement = plan.count_statement()
    assert (execution_metrics in set(find_tables(statement))) is reads_metrics
    rows = select(func.count()).select_from(plan.statement().subquery())
    with engine.connect() as conn:
        assert count_rows(conn, plan) == conn.execute(rows).scalar_one() > 0


def test_a_join_not_on_the_right_tables_key_is_never_left_out() -> None:
    """Only a join on the whole primary key of its right table keeps every row as it is."""
    ds = get_dataset("evaluation-results")
    loose = executions.outerjoin(
        execution_metrics, execution_metrics.c.cost_usd == executions.c.execution_time_s
    )
    stmt = filters.lean_select(dataclasses.replace(ds, from_=loose), FilterSpec(), func.count())
    assert execution_metrics in set(find_tables(stmt))
    keyed = filters.lean_select(ds, FilterSpec(), func.count())
    assert execution_metrics not in set(find_tables(keyed))


def test_an_export_redacts_a_text_repeated_across_its_chunks_once(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory plants the same secret in every tenth prompt: 60 rows in chunks of seven, six
    of which hold it."""
    from nano_export.privacy import policy

    calls: list[str] = []
    real = policy._redact_standard
    monkeypatch.setattr(policy, "_redact_standard", lambda text: calls.append(text) or real(text))
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    kept = tmp_path / "kept.csv"
    run_export(engine, plan, out_path=kept, secret=KEY, chunk_rows=7)
    assert calls.count(PLANTED) == 1
    monkeypatch.setattr(policy, "MEMO_CHARS", 0)  # a memo that keeps nothing
    calls.clear()
    each_time = tmp_path / "each-time.csv"
    run_export(engine, plan, out_path=each_time, secret=KEY, chunk_rows=7)
    assert calls.count(PLANTED) == 6
    assert kept.read_bytes() == each_time.read_bytes()


def test_the_reader_reads_at_most_read_ahead_chunks_ahead_of_the_caller(
    engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory is bounded by the chunk size: the reader waits for the caller, READ_AHEAD ahead."""
    from nano_export import exporter

    plan = plan_export(ExportRequest(dataset="evaluation-results"))  # 60 rows: 15 chunks of 4
    real = exporter.read_chunks
    read = 0

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal read
        for chunk in real(*args, **kwargs):
            read += 1
            yield chunk

    monkeypatch.setattr(exporter, "read_chunks", counting)
    leads = []
    for taken, _item in enumerate(exporter.read_ahead(engine, plan, 4), start=1):
        deadline = time.monotonic() + 5
        while read < min(taken + exporter.READ_AHEAD, 15) and time.monotonic() < deadline:
            time.sleep(0.01)  # give the reader the time to run as far ahead as it may
        time.sleep(0.05)
        leads.append(read - taken)
    assert len(leads) == 15
    assert max(leads) == exporter.READ_AHEAD == 2  # it does read ahead, and no further


def test_a_failing_screen_stops_the_export_with_its_error_and_leaves_no_file(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from nano_export import privacy

    real = privacy.screen_flags
    screened = 0

    def failing(df, *, level):  # type: ignore[no-untyped-def]
        nonlocal screened
        screened += 1
        if screened == 2:
            raise RuntimeError("the screen broke")
        return real(df, level=level)

    monkeypatch.setattr(privacy, "screen_flags", failing)
    _assert_export_fails_leaving_no_file(engine, tmp_path, "the screen broke", chunk_rows=7)
    assert screened == 2
    names = {t.name for t in threading.enumerate()}
    assert "export-reader" not in names
