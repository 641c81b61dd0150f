"""SQLite's native reader: ADBC's driver with a witness row, and where read_sql stays."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from factories import insert_executions
from sqlalchemy import text

from nano_export import exporter, sqlitearrow
from nano_export.db import get_engine
from nano_export.errors import ExportFailed
from nano_export.exporter import manifest, plan_export, run_export
from nano_export.models import ExportRequest, FilterSpec
from nano_export.schema import executions
from nano_export.typedcells import rechunk

KEY = "sqlitearrow-test-secret-0123456789abcdef"
AT = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def engine(sqlite_url: str):  # type: ignore[no-untyped-def]
    return get_engine(sqlite_url)


def _both(engine, plan, folder: Path, chunk_rows: int) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    files = []
    for native in (False, True):
        out = folder / str(native) / f"x.{plan.format}"
        out.parent.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(exporter, "NATIVE_READ", native)
            mp.setattr(exporter, "manifest", lambda p: manifest(p, at=AT))  # the time inside
            run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=chunk_rows)
        files.append(out.read_bytes())
    return files[0], files[1]


def _bare_rows(engine, first: int, n: int) -> None:  # type: ignore[no-untyped-def]
    """Executions with every nullable column NULL and no metrics row."""
    rows = [
        {
            "id": i,
            "source_key": f"bare:{i}",
            "provider": "openai",
            "model": "gpt-5-mini",
            "started_at": datetime(2025, 8, 1, tzinfo=UTC),
            "success": True,
            "source": "bare",
        }
        for i in range(first, first + n)
    ]
    with engine.begin() as conn:
        conn.execute(executions.insert(), rows)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_columns_null_in_the_whole_first_batch_read_like_read_sql(
    engine, tmp_path: Path, fmt: str
) -> None:
    # 30 rows with NULL in every nullable column, then rows with values: with 7 rows a chunk,
    # the driver's first batches hold nothing but NULL in those columns.
    _bare_rows(engine, 1, 30)
    insert_executions(engine, 20, first_id=100)
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy="full", format=fmt))  # type: ignore[arg-type]
    with engine.connect() as conn:
        query = sqlitearrow.native_query(conn, plan.statement(raw=True), plan.dataset.kinds())
    assert query is not None
    batches = list(sqlitearrow.read_batches(query, 7))
    assert sum(b.num_rows for b in batches) == 50
    first = batches[0]
    assert first.column("input_tokens").null_count == first.num_rows  # NULL-first, read anyway
    table = pa.Table.from_batches(batches)
    assert table.column("input_tokens").drop_null().to_pylist()[:1] != []
    assert table.column("execution_id").to_pylist() == [*range(1, 31), *range(100, 120)]
    old, new = _both(engine, plan, tmp_path, chunk_rows=7)
    assert old == new


def test_a_value_of_another_kind_than_its_column_reruns_the_export_on_read_sql(
    engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    insert_executions(engine, 20)
    with engine.begin() as conn:  # SQLite keeps a fraction in an INTEGER column as it is
        conn.execute(text("UPDATE executions SET rank = 2.5 WHERE id = 15"))
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy="full"))
    with engine.connect() as conn:
        query = sqlitearrow.native_query(conn, plan.statement(raw=True), plan.dataset.kinds())
    assert query is not None
    with pytest.raises(sqlitearrow.NativeReadError, match="Type mismatch"):
        list(sqlitearrow.read_batches(query, 5))
    caplog.set_level(logging.INFO, logger="nano_export.exporter")
    old, new = _both(engine, plan, tmp_path, chunk_rows=5)
    assert old == new and b",2.5," in new
    assert "native reader failed; export restarted on read_sql" in caplog.text


def test_the_reader_that_ran_is_logged(
    engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    insert_executions(engine, 5)
    caplog.set_level(logging.INFO, logger="nano_export.exporter")
    for spec, reader in (
        (FilterSpec(), "adbc-sqlite"),
        (FilterSpec(where="test_name ~ 'x'"), "read_sql"),
    ):
        caplog.clear()
        plan = plan_export(ExportRequest(dataset="evaluation-results", filters=spec))
        run_export(engine, plan, out_path=tmp_path / f"{reader}.csv", secret=KEY, chunk_rows=3)
        readers = [r.reader for r in caplog.records if r.getMessage() == "export reader"]  # type: ignore[attr-defined]
        assert readers == [reader]


def test_statements_the_driver_cannot_run_stay_on_read_sql(engine) -> None:
    insert_executions(engine, 3)
    dataset = plan_export(ExportRequest(dataset="evaluation-results")).dataset
    with engine.connect() as conn:
        regex = plan_export(
            ExportRequest(dataset="evaluation-results", filters=FilterSpec(where="prompt ~ 'a'"))
        )
        assert sqlitearrow.native_query(conn, regex.statement(raw=True), dataset.kinds()) is None
        unordered = dataset.select(raw=True).order_by(None)
        assert sqlitearrow.native_query(conn, unordered, dataset.kinds()) is None
        by_text = dataset.select(raw=True).order_by(None).order_by(executions.c.provider)
        assert sqlitearrow.native_query(conn, by_text, dataset.kinds()) is None
    memory = get_engine("sqlite://")
    with memory.connect() as conn:
        assert sqlitearrow.database_file(conn) is None


def test_parameters_bind_as_the_sqlite3_module_binds_them(engine) -> None:
    insert_executions(engine, 40)
    spec = FilterSpec(since=datetime(2025, 8, 1, 0, 10, tzinfo=UTC), provider=("o'brien", "openai"))
    plan = plan_export(ExportRequest(dataset="evaluation-results", filters=spec))
    with engine.connect() as conn:
        query = sqlitearrow.native_query(conn, plan.statement(raw=True), plan.dataset.kinds())
        expected = [row.execution_id for row in conn.execute(plan.statement())]
    assert query is not None
    assert "2025-08-01 00:10:00+00:00" in query.params and "o'brien" in query.params
    got = [i for b in sqlitearrow.read_batches(query, 4) for i in b.column(0).to_pylist()]
    assert expected and got == expected


def test_rechunk_cuts_exact_chunks_across_batches() -> None:
    batches = [pa.record_batch({"x": list(range(a, b))}) for a, b in ((0, 2), (2, 9), (9, 10))]
    tables = list(rechunk(iter(batches), 3))
    assert [t.column("x").to_pylist() for t in tables] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(rechunk(iter([]), 3)) == []


def test_a_database_that_goes_away_fails_with_the_drivers_words(engine, tmp_path: Path) -> None:
    insert_executions(engine, 3)
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    with engine.connect() as conn:
        query = sqlitearrow.native_query(conn, plan.statement(raw=True), plan.dataset.kinds())
    assert query is not None
    gone = sqlitearrow.NativeQuery(
        path=tmp_path / "missing" / "x.db", sql=query.sql, params=query.params, names=query.names
    )
    with pytest.raises(ExportFailed, match=r"^SQLite: "):
        list(sqlitearrow.read_batches(gone, 5))


def test_the_driver_never_runs_in_the_process_that_writes(sqlite_url: str, tmp_path: Path) -> None:
    """Two copies of SQLite in one process corrupt databases: the driver runs in a process of
    its own."""
    code = (
        "import sys\n"
        "from factories import insert_executions\n"
        "from nano_export.db import get_engine\n"
        "from nano_export.exporter import plan_export, run_export\n"
        "from nano_export.models import ExportRequest\n"
        f"engine = get_engine({sqlite_url!r})\n"
        "insert_executions(engine, 30)\n"
        "plan = plan_export(ExportRequest(dataset='evaluation-results'))\n"
        "from pathlib import Path\n"
        f"out = Path({str(tmp_path / 'x.csv')!r})\n"
        "run_export(engine, plan, out_path=out, secret='k' * 40, chunk_rows=7)\n"
        "print(sorted(m for m in sys.modules if m.startswith('adbc_driver_sqlite')))\n"
    )
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tests,
        check=True,
        env={**os.environ, "PYTHONPATH": str(tests)},
    )
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "x.csv").read_bytes().count(b"\r\n") == 31


def test_closing_the_reader_early_ends_its_process(engine) -> None:  # type: ignore[no-untyped-def]
    insert_executions(engine, 300)
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    with engine.connect() as conn:
        query = sqlitearrow.native_query(conn, plan.statement(raw=True), plan.dataset.kinds())
    assert query is not None
    seen: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(real(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "Popen", spy)
        batches = sqlitearrow.read_batches(query, 10)
        assert next(batches).num_rows == 9  # the driver's first batch, less the witness row
        batches.close()
    (child,) = seen
    assert child.returncode is not None  # ended and reaped, not left running
