"""Every export format carries exactly the values of the CSV export of the same spec.

Each file is read back with the standard reader of its format (pyarrow for Parquet, openpyxl for
xlsx, ``json`` for JSON Lines, the ``csv`` module for CSV) and compared, cell by cell, with the CSV
export of the same plan at the same privacy level, over rows of odd texts: quotes, newlines,
unicode, formula-like text, credentials, very long cells and nulls.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from factories import SECRET, insert_executions
from openpyxl import load_workbook

from nano_export import __version__
from nano_export.csvcells import format_frame
from nano_export.db import get_engine
from nano_export.exporter import ExportPlan, plan_export, run_export
from nano_export.formats import FORMAT_NAMES, FORMATS, open_sink, sheets_for
from nano_export.models import ExportRequest, FilterSpec
from nano_export.parquetfmt import read_manifest
from nano_export.schema import executions
from nano_export.xlsxfmt import CELL_CHARS, CUT_MARKER

KEY = "formats-test-secret-0123456789abcdef"
LONG = "long cell " + "x" * 40_000 + " end"
ODD_PROMPTS = [
    'she said "hi", then left',
    "line one\nline two\r\nline three",
    "unicode: héllo wörld · 日本語 · עברית · 👩‍💻 · e\u0301",
    '=HYPERLINK("http://evil.example")',
    "+1 555 0100",
    "-2",
    "@SUM(A1:A2)",
    f"my key is {SECRET} — keep it",
    "mail carol@example.com from /home/carol/x",
    LONG,
    "\ttab first, trailing space ",
    "_x0041_ looks like an OOXML escape",
    None,
]


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    eng = get_engine(db_url)
    insert_executions(eng, 20)
    start = datetime(2025, 9, 1, 12, 30, 15, 123456, tzinfo=UTC)
    with eng.begin() as conn:
        conn.execute(
            executions.insert(),
            [
                {
                    "id": 1000 + i,
                    "source_key": f"odd:{i}",
                    "test_id": "odd",
                    "test_name": 'Odd, "texts"',
                    "provider": "openai",
                    "model": "gpt-5-mini",
                    "started_at": start + timedelta(seconds=i, microseconds=i * 7),
                    "success": i % 2 == 0,
                    "error": None,
                    "execution_time_s": None if i == 3 else 0.1 * i,
                    "prompt": prompt,
                    "response": None if i % 3 == 0 else f'réponse {i}\n"quoted", {prompt!r}'[:50],
                    "user": None if i == 5 else f"user{i}",
                    "session_id": f"sess-{i}",
                    "source": "odd",
                }
                for i, prompt in enumerate(ODD_PROMPTS)
            ],
        )
    return eng


def _plan(level: str, fmt: str, **extra: Any) -> ExportPlan:
    return plan_export(
        ExportRequest(dataset="evaluation-results", privacy=level, format=fmt, **extra)  # type: ignore[arg-type]
    )


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))


def _ooxml_unescape(value: Any) -> Any:
    """Excel shows ``_xHHHH_`` escapes as their character; openpyxl leaves them as written."""
    if not isinstance(value, str):
        return value
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), value)


def read_back(path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and typed rows of a file, read by the standard reader of its format."""
    if fmt == "parquet":
        table = pq.read_table(path)
        return table.column_names, table.to_pylist()
    if fmt in ("jsonl", "jsonl.gz"):
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if fmt.endswith(".gz") else raw).decode("utf-8")
        rows = [json.loads(line) for line in text.split("\n") if line]
        return (list(rows[0]) if rows else []), rows
    if fmt == "xlsx":
        book = load_workbook(path, read_only=True)
        header: list[str] = []
        rows = []
        for sheet in book.worksheets:
            values = list(sheet.iter_rows(values_only=True))
            header = [str(h) for h in values[0]]
            rows += [
                dict(zip(header, (_ooxml_unescape(v) for v in row), strict=True))
                for row in values[1:]
            ]
        book.close()
        return header, rows
    raise AssertionError(fmt)


def _as_csv_cells(rows: list[dict[str, Any]], plan: ExportPlan) -> list[list[str]]:
    """Typed values as the CSV file writes them (same formatter), null as an empty field."""
    kinds = plan.output_kinds
    frame = pd.DataFrame(rows, columns=plan.output_names)
    for name, kind in kinds.items():  # openpyxl gives naive datetimes (UTC) and ints for floats
        if kind == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
    cells = format_frame(frame, kinds)
    return [["" if v is None else v for v in row] for row in cells.itertuples(index=False)]


def _xlsx_expected(csv_rows: list[list[str]], plan: ExportPlan) -> list[list[str]]:
    """The CSV cells as an xlsx file holds them: times to the millisecond, long cells cut."""
    kinds = [plan.output_kinds[n] for n in plan.output_names]
    out = []
    for row in csv_rows:
        cells = []
        for value, kind in zip(row, kinds, strict=True):
            if kind == "datetime" and value:
                stamp = pd.Timestamp(value).round("ms")
                value = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if kind == "text" and value.startswith("'") and value[1:2] in "=+-@\t\r":
                value = value[1:]  # the formula guard is CSV's alone
            if kind == "text" and len(value) > CELL_CHARS:
                value = value[: CELL_CHARS - len(CUT_MARKER)] + CUT_MARKER
            cells.append(value)
        out.append(cells)
    return out


def _digits15(rows: list[list[str]], plan: ExportPlan) -> list[list[str]]:
    kinds = [plan.output_kinds[n] for n in plan.output_names]
    return [
        [f"{float(v):.15g}" if k == "float" and v else v for v, k in zip(row, kinds, strict=True)]
        for row in rows
    ]


def _unguard(csv_rows: list[list[str]], plan: ExportPlan) -> list[list[str]]:
    kinds = [plan.output_kinds[n] for n in plan.output_names]
    return [
        [
            v[1:] if k == "text" and v.startswith("'") and v[1:2] in "=+-@\t\r" else v
            for v, k in zip(row, kinds, strict=True)
        ]
        for row in csv_rows
    ]


TYPED_FORMATS = [f for f in FORMAT_NAMES if f not in ("csv", "csv.gz")]


@pytest.mark.parametrize("level", ["public", "standard", "full"])
@pytest.mark.parametrize("fmt", TYPED_FORMATS)
def test_each_format_reads_back_to_the_values_of_the_csv_export(
    engine, tmp_path: Path, level: str, fmt: str
) -> None:
    csv_plan = _plan(level, "csv")
    run_export(engine, csv_plan, out_path=tmp_path / "ref.csv", secret=KEY, chunk_rows=7)
    header, *csv_rows = _csv_rows(tmp_path / "ref.csv")
    assert len(csv_rows) == 20 + len(ODD_PROMPTS)

    plan = _plan(level, fmt)
    out = tmp_path / f"out.{fmt}"
    result = run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=7)
    names, rows = read_back(out, fmt)
    assert names == header == plan.output_names
    assert result.rows == len(rows) == len(csv_rows)
    written = _as_csv_cells(rows, plan)
    if fmt == "xlsx":
        # Text is text in a workbook: no formula guard, so compare the unguarded values. Excel
        # keeps 15 significant digits of a number.
        assert _digits15(_unguard(written, plan), plan) == _digits15(
            _xlsx_expected(csv_rows, plan), plan
        )
        assert result.truncated_cells == (1 if level != "public" else 0)
    else:
        assert _unguard(written, plan) == _unguard(csv_rows, plan)
        assert written == csv_rows  # the same formatter gives the same CSV text


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_redaction_is_identical_in_every_format(engine, tmp_path: Path, fmt: str) -> None:
    plan = _plan("standard", fmt)
    out = tmp_path / f"out.{fmt}"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=5)
    if fmt in ("csv", "csv.gz"):
        rows = _csv_rows(out)[1:]
        prompts = [r[plan.output_names.index("prompt")] for r in rows]
    else:
        prompts = [r["prompt"] for r in read_back(out, fmt)[1]]
    flat = json.dumps(prompts, ensure_ascii=False)
    assert SECRET not in flat and "carol@example.com" not in flat
    assert "[REDACTED]" in flat
    if fmt in ("xlsx",):
        with zipfile.ZipFile(out) as z:
            assert all(SECRET.encode() not in z.read(n) for n in z.namelist())


def test_typed_formats_keep_types_and_nulls(engine, tmp_path: Path) -> None:
    plan = _plan("full", "jsonl")
    run_export(engine, plan, out_path=tmp_path / "a.jsonl", secret=KEY, chunk_rows=50)
    rows = read_back(tmp_path / "a.jsonl", "jsonl")[1]
    odd = [r for r in rows if r["test_id"] == "odd"]
    assert isinstance(odd[0]["success"], bool)
    assert odd[3]["execution_time_s"] is None and isinstance(odd[4]["execution_time_s"], float)
    assert odd[0]["started_at"] == "2025-09-01T12:30:15.123456Z"
    assert odd[2]["prompt"] == ODD_PROMPTS[2]  # unicode as is
    raw = (tmp_path / "a.jsonl").read_bytes()
    assert "日本語".encode() in raw and b"\\u" not in raw.replace(b"\\u0007", b"")

    pplan = _plan("full", "parquet")
    run_export(engine, pplan, out_path=tmp_path / "a.parquet", secret=KEY, chunk_rows=10)
    schema = pq.read_schema(tmp_path / "a.parquet")
    types = {f.name: str(f.type) for f in schema}
    assert types["execution_id"] == "int64"
    assert types["success"] == "bool"
    assert types["started_at"] == "timestamp[us, tz=UTC]"
    assert types["execution_time_s"] == "double"
    assert types["prompt"] in ("string", "large_string")
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    assert meta.num_row_groups == 4  # one per chunk of 10 rows (33 rows)
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_parquet_metadata_carries_the_manifest(engine, tmp_path: Path) -> None:
    plan = _plan(
        "standard",
        "parquet",
        filters=FilterSpec(provider=("openai",), where="execution_id > 3"),
        columns=["execution_id", "model", "prompt"],
        rename={"model": "llm"},
    )
    out = tmp_path / "m.parquet"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=100)
    manifest = read_manifest(out)
    assert manifest["dataset"] == "evaluation-results"
    assert manifest["filters"] == {"provider": ["openai"], "where": "execution_id > 3"}
    assert manifest["columns"] == ["execution_id", "llm", "prompt"]
    assert manifest["privacy"] == "standard"
    assert manifest["nano_export_version"] == __version__
    at = datetime.fromisoformat(manifest["exported_at"])
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60


def test_xlsx_cells_are_typed_text_is_never_a_formula_and_the_header_is_bold_and_frozen(
    engine, tmp_path: Path
) -> None:
    plan = _plan("full", "xlsx")
    out = tmp_path / "w.xlsx"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=8)
    book = load_workbook(out)
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.bold for cell in sheet[1])
    col = {c.value: c.column_letter for c in sheet[1]}
    formula_rows = [
        r for r in range(2, sheet.max_row + 1) if sheet[f"{col['test_id']}{r}"].value == "odd"
    ]
    first = formula_rows[0]
    formula = sheet[f"{col['prompt']}{first + 3}"]
    assert formula.value == '=HYPERLINK("http://evil.example")' and formula.data_type == "s"
    assert sheet[f"{col['execution_id']}{first}"].data_type == "n"
    assert sheet[f"{col['success']}{first}"].data_type == "b"
    stamp = sheet[f"{col['started_at']}{first}"]
    assert stamp.is_date and stamp.number_format == "yyyy-mm-dd hh:mm:ss.000"
    assert stamp.value == datetime(2025, 9, 1, 12, 30, 15, 123000)
    long_cell = sheet[f"{col['prompt']}{first + 9}"].value
    assert len(long_cell) == CELL_CHARS and long_cell.endswith(CUT_MARKER)
    assert 10 <= sheet.column_dimensions[col["prompt"]].width <= 62
    assert sheet.column_dimensions[col["started_at"]].width >= 20


def test_xlsx_continues_on_a_new_sheet_with_the_header_at_the_sheet_size(tmp_path: Path) -> None:
    kinds = {"n": "int", "label": "text"}
    with open_sink(
        "xlsx", tmp_path / "big.xlsx", columns=list(kinds), kinds=kinds, sheet_rows=1000
    ) as sink:  # type: ignore[arg-type]
        for start in range(0, 1010, 300):
            n = list(range(start, min(start + 300, 1010)))
            sink.write(pd.DataFrame({"n": n, "label": [f"row {i}" for i in n]}))
        result = sink.commit()
    assert result.rows == 1010 and result.sheets == 2 == sheets_for(1010, 1000)
    book = load_workbook(tmp_path / "big.xlsx", read_only=True)
    first, second = (list(s.iter_rows(values_only=True)) for s in book.worksheets)
    assert first[0] == second[0] == ("n", "label")
    assert len(first) == 1001 and len(second) == 11
    assert second[1:] == [(i, f"row {i}") for i in range(1000, 1010)]
    assert [n for n, _ in first[1:] + second[1:]] == list(range(1010))


def test_sheets_for_uses_excels_limit() -> None:
    assert sheets_for(0) == 1
    assert sheets_for(1_048_575) == 1
    assert sheets_for(1_048_575 + 10) == 2


@pytest.mark.parametrize("fmt", TYPED_FORMATS)
def test_a_failed_export_leaves_no_file_and_a_bad_chunk_is_refused(
    tmp_path: Path, fmt: str
) -> None:
    kinds = {"n": "int"}
    out = tmp_path / f"x.{fmt}"
    with (
        pytest.raises(RuntimeError, match="boom"),
        open_sink(fmt, out, columns=["n"], kinds=kinds) as sink,  # type: ignore[arg-type]
    ):
        sink.write(pd.DataFrame({"n": [1, 2]}))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with open_sink(fmt, out, columns=["n"], kinds=kinds) as sink:  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="differ"):
            sink.write(pd.DataFrame({"m": [1]}))
        sink.write(pd.DataFrame({"n": []}))
        result = sink.commit()
    assert result.rows == 0 and out.exists()
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(pd.DataFrame({"n": [1]}))
    with pytest.raises(RuntimeError, match="closed"):
        sink.commit()
    sink.abort()  # after commit: nothing to do
    assert out.exists()


def test_every_format_has_a_content_type_and_a_hint(tmp_path: Path) -> None:
    assert set(FORMATS) == set(FORMAT_NAMES)
    with pytest.raises(ValueError, match=r"the formats are: csv, csv\.gz, xlsx, parquet"):
        open_sink("xml", tmp_path / "x.xml", columns=["n"], kinds={"n": "int"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sheet_rows"):
        open_sink("xlsx", tmp_path / "x.xlsx", columns=["n"], kinds={"n": "int"}, sheet_rows=0)
    assert list(tmp_path.iterdir()) == []
    assert FORMATS["xlsx"].content_type.endswith("spreadsheetml.sheet")
    assert all(f.hint and "/" in f.content_type for f in FORMATS.values())


def test_a_cell_is_cut_at_excels_limit_in_utf16_units(tmp_path: Path) -> None:
    kinds = {"t": "text"}
    emoji = "😀" * 20_000  # 20,000 characters, 40,000 UTF-16 units: over the limit
    fits = "é" * CELL_CHARS  # exactly at the limit: kept whole
    with open_sink("xlsx", tmp_path / "u.xlsx", columns=["t"], kinds=kinds) as sink:  # type: ignore[arg-type]
        sink.write(pd.DataFrame({"t": [emoji, fits, "short", None]}))
        result = sink.commit()
    assert result.truncated_cells == 1
    rows = [r[0] for r in load_workbook(tmp_path / "u.xlsx").active.iter_rows(values_only=True)]
    assert rows[2] == fits and rows[3] == "short"
    assert rows[1].endswith(CUT_MARKER) and rows[1].startswith("😀")
    assert len(rows[1].encode("utf-16-le")) // 2 <= CELL_CHARS


def test_the_sheet_size_setting_reaches_the_export_and_its_record(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nano_export import jobs
    from nano_export.audit import list_events

    engine = get_engine(settings.db_url)
    insert_executions(engine, 20)
    small = settings.model_copy(update={"xlsx_sheet_rows": 7})
    rec = jobs.submit_export(
        engine,
        small,
        user="ann",
        role="admin",
        request=ExportRequest(dataset="performance-metrics", format="xlsx"),
        interface="cli",
        wait=True,
    )
    assert rec.status == "succeeded" and rec.sheets == 3 and rec.truncated_cells == 0
    assert rec.note == "3 sheets, each starting with the header row"
    book = load_workbook(rec.file_path, read_only=True)
    assert [s.max_row for s in book.worksheets] == [8, 8, 7]
    with engine.connect() as conn:
        (done,) = [e for e in list_events(conn, export_id=rec.id) if e.event == "export.succeeded"]
    assert done.details["format"] == "xlsx" and done.details["sheets"] == 3


def test_jsonl_lines_are_valid_json_with_escapes_nulls_and_no_infinities(tmp_path: Path) -> None:
    kinds = {'say "x"': "text", "ü": "float", "n": "int", "ok": "bool", "at": "datetime"}
    frame = pd.DataFrame(
        {
            'say "x"': ['bell\x07 \\ "q" \u2028 ✓', None, ""],
            "ü": [float("inf"), 1e-7, None],
            "n": [1, None, 3],
            "ok": [True, None, False],
            "at": ["2025-08-10 14:03:07", None, "2025-08-10 14:03:07.5"],
        }
    )
    out = tmp_path / "x.jsonl.gz"
    with open_sink("jsonl.gz", out, columns=list(kinds), kinds=kinds) as sink:  # type: ignore[arg-type]
        sink.write(frame)
        result = sink.commit()
    raw = gzip.decompress(out.read_bytes())
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert rows[0] == {
        'say "x"': 'bell\x07 \\ "q" \u2028 ✓',
        "ü": None,
        "n": 1,
        "ok": True,
        "at": "2025-08-10T14:03:07.000000Z",
    }
    assert rows[1] == {'say "x"': None, "ü": 0.0000001, "n": None, "ok": None, "at": None}
    assert rows[2]['say "x"'] == "" and rows[2]["at"] == "2025-08-10T14:03:07.500000Z"
    assert b"0.0000001" in raw and b"e-07" not in raw
