"""The CSV writer: exact bytes, quoting, formula guard, numbers, times, gzip, excel, temp files."""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import io
import logging
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nano_export import csvfmt
from nano_export.csvcells import format_cells
from nano_export.csvfmt import BOM, TEMP_SUFFIX, CsvSink, format_frame, guard_formula

KINDS = {"id": "int", "cost": "float", "name": "text", "ok": "bool", "at": "datetime"}
COLUMNS = list(KINDS)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, None],
            "cost": [0.035445, -1.5, None],
            "name": ["plain", "=SUM(A1)", None],
            "ok": [True, False, None],
            "at": ["2025-08-10 14:03:07.123456", "2025-08-10 14:03:07", None],
        }
    )


def _write(path: Path, chunks: list[pd.DataFrame], kinds: dict[str, str], **opts: bool) -> bytes:
    with CsvSink(path, columns=list(kinds), kinds=kinds, **opts) as sink:  # type: ignore[arg-type]
        for chunk in chunks:
            sink.write(chunk)
        sink.commit()
    return path.read_bytes()


def _chunk(values: pd.Series | pa.Array | pa.ChunkedArray) -> pd.DataFrame | pa.Table:
    """One column ``c`` as the native readers (Arrow) or ``read_sql`` (a frame) would hand it."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return pa.table({"c": values})
    return values.to_frame("c")


def _cells(series: pd.Series, kind: str) -> list[str | None]:
    return list(format_frame(series.to_frame("c"), {"c": kind})["c"])  # type: ignore[dict-item]


def test_small_frame_with_every_kind_and_nulls_has_exact_bytes(tmp_path: Path) -> None:
    data = _write(tmp_path / "out.csv", [_frame()], KINDS)
    assert data == (
        b"id,cost,name,ok,at\r\n"
        b"1,0.035445,plain,true,2025-08-10T14:03:07.123456Z\r\n"
        b"2,-1.5,'=SUM(A1),false,2025-08-10T14:03:07.000000Z\r\n"
        b",,,,\r\n"
    )


@pytest.mark.parametrize("arrow", [False, True])
def test_a_chunk_is_encoded_a_slice_at_a_time_into_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrow: bool
) -> None:
    """A chunk's CSV text is built a few thousand rows at a time, not all at once (memory)."""
    frame = pd.concat([_frame()] * 4, ignore_index=True)
    chunk = pa.Table.from_pandas(frame, preserve_index=False) if arrow else frame
    whole = _write(tmp_path / "whole.csv", [chunk], KINDS)  # type: ignore[list-item]
    encoded: list[int] = []
    real = csvfmt.encode_rows

    def spy(cells, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(len(cells[0]))
        return real(cells, **kwargs)

    monkeypatch.setattr(csvfmt, "SLICE_ROWS", 5)
    monkeypatch.setattr(csvfmt, "encode_rows", spy)
    sliced = _write(tmp_path / "sliced.csv", [chunk], KINDS)  # type: ignore[list-item]
    assert encoded == [5, 5, 2]
    assert sliced == whole and whole.count(b"\r\n") == 13


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("a,b", b'"a,b"'),
        ('say "hi"', b'"say ""hi"""'),
        ("line\nbreak", b'"line\nbreak"'),
        ("carriage\rreturn", b'"carriage\rreturn"'),
        ("crlf\r\nend", b'"crlf\r\nend"'),
        ("no specials here", b"no specials here"),
    ],
)
def test_fields_with_comma_quote_cr_or_lf_are_quoted_with_quotes_doubled(
    tmp_path: Path, text: str, field: bytes
) -> None:
    df = pd.DataFrame({"name": [text], "id": [7]})
    data = _write(tmp_path / "out.csv", [df], {"name": "text", "id": "int"})
    assert data == b"name,id\r\n" + field + b",7\r\n"


def test_header_names_are_quoted_and_guarded_like_cells(tmp_path: Path) -> None:
    df = pd.DataFrame({"a,b": ["x"], "=c": ["y"]})
    data = _write(tmp_path / "out.csv", [df], {"a,b": "text", "=c": "text"})
    assert data.split(b"\r\n")[0] == b'"a,b",\'=c'


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_text_starting_with_each_formula_character_gets_a_leading_quote(trigger: str) -> None:
    assert guard_formula(trigger + "1+1") == "'" + trigger + "1+1"
    assert _cells(pd.Series([trigger + "cmd"]), "text") == ["'" + trigger + "cmd"]


def test_formula_characters_inside_text_are_left_alone() -> None:
    assert guard_formula("a=b+c-d@e") == "a=b+c-d@e"
    assert _cells(pd.Series(["a=b", " =x", ""]), "text") == ["a=b", " =x", ""]


def test_negative_numbers_stay_numbers_without_guard(tmp_path: Path) -> None:
    df = pd.DataFrame({"n": [-3, 4], "x": [-1.5, -0.00001]})
    data = _write(tmp_path / "out.csv", [df], {"n": "int", "x": "float"})
    assert data == b"n,x\r\n-3,-1.5\r\n4,-0.00001\r\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00001, "0.00001"),
        (0.035445, "0.035445"),
        (1234567.5, "1234567.5"),
        (1e-7, "0.0000001"),
        (1e16, "10000000000000000"),
        (1.5e20, "150000000000000000000"),
        (123456789012345.67, "123456789012345.67"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.0, "2"),
        (0.0, "0"),
    ],
)
def test_floats_are_written_in_plain_shortest_notation(value: float, text: str) -> None:
    assert _cells(pd.Series([value]), "float") == [text]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40))
def test_any_finite_float_is_plain_and_round_trips(values: list[float]) -> None:
    texts = _cells(pd.Series(values, dtype="float64"), "float")
    for value, text in zip(values, texts, strict=True):
        assert text is not None
        assert "e" not in text.lower()
        assert float(text) == value


def test_decimal_objects_from_postgres_numeric_are_plain_numbers() -> None:
    values = pd.Series([Decimal("0.035445000"), Decimal("0.00001"), None], dtype=object)
    assert _cells(values, "float") == ["0.035445", "0.00001", None]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([12.0, np.nan, 3.0]),  # ints with nulls arrive as float + NaN
        pd.Series([12, None, 3], dtype="Int64"),
        pd.Series([12, None, 3], dtype=object),
        pd.Series([Decimal(12), None, Decimal(3)], dtype=object),
        pd.Series(["12", None, "3"], dtype=object),
    ],
)
def test_ints_are_written_without_decimal_point_whatever_their_dtype(values: pd.Series) -> None:
    assert _cells(values, "int") == ["12", None, "3"]


def test_int_column_holding_fractions_keeps_them_rather_than_truncating(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="nano_export.csvfmt"):
        assert _cells(pd.Series([1.0, 2.5]), "int") == ["1", "2.5"]
    assert "fractions" in caplog.text


def test_number_column_holding_words_is_refused_with_the_column_name() -> None:
    with pytest.raises(ValueError, match="'c' should hold numbers"):
        _cells(pd.Series(["12", "twelve"], dtype=object), "int")


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([True, False, None], dtype=object),
        pd.Series([1, 0, None], dtype=object),  # SQLite
        pd.Series([1.0, 0.0, np.nan]),
        pd.Series([True, False, None], dtype="boolean"),
        pd.Series(["t", "false", None], dtype=object),
    ],
)
def test_booleans_are_true_or_false_whatever_their_dtype(values: pd.Series) -> None:
    assert _cells(values, "bool") == ["true", "false", None]


def test_plain_numpy_bools_and_ints_are_true_or_false() -> None:
    assert _cells(pd.Series([True, False]), "bool") == ["true", "false"]
    assert _cells(pd.Series([1, 0]), "bool") == ["true", "false"]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        (pd.Series([0, 1, 2, None], dtype="Int64"), "2"),  # read_sql's nullable ints
        (pd.Series([0.0, 1.0, 0.5], dtype="Float64"), "0.5"),
        (pd.Series([0, 1, -1]), "-1"),
        (pa.chunked_array([pa.array([0, 1, 2, None])]), "2"),  # the native readers' ints
        (pa.array([0.0, 1.0, 0.5]), "0.5"),
    ],
    ids=["Int64", "Float64", "int64", "arrow-int", "arrow-float"],
)
def test_a_number_other_than_0_or_1_is_not_a_boolean_on_any_path(values, bad: str) -> None:  # type: ignore[no-untyped-def]
    """Both read paths refuse the same cells, and the message names the bad value."""
    with pytest.raises(ValueError, match=f"not a boolean: {bad}$"):
        format_cells(_chunk(values), {"c": "bool"})


def test_big_ints_keep_every_digit_on_every_path() -> None:
    big = 2**53 + 1
    for values in (
        pd.Series([big, None, "5"], dtype=object),  # mixed: read_sql's fallback
        pd.Series([big, None], dtype="Int64"),
        pa.chunked_array([pa.array([big, None])]),
    ):
        chunk = _chunk(values)
        (cells,) = format_cells(chunk, {"c": "int"})
        assert cells.to_pylist()[:2] == [str(big), None]
        (cells,) = format_cells(chunk, {"c": "text"})
        assert cells.to_pylist()[:2] == [str(big), None]


def test_errors_name_the_column_on_the_arrow_path_too() -> None:
    from nano_export.typedcells import typed_table

    with pytest.raises(ValueError, match="'cost' should hold numbers"):
        format_cells(pa.table({"cost": pa.array(["12", "twelve"])}), {"cost": "int"})
    with pytest.raises(ValueError, match="int column 'cost' holds fractions"):
        typed_table(pa.table({"cost": [1.5]}), {"cost": "int"})


def test_a_word_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        _cells(pd.Series(["yes-ish"], dtype=object), "bool")


def test_datetimes_of_every_input_form_share_one_format_across_chunks(tmp_path: Path) -> None:
    moment = datetime(2025, 8, 10, 14, 3, 7)
    chunks: list[pd.Series] = [
        pd.Series(["2025-08-10 14:03:07"], dtype=object),  # SQLite text without fraction
        pd.Series(["2025-08-10 14:03:07.000000"], dtype="str"),  # SQLite text with fraction
        pd.Series([pd.Timestamp(moment)]),  # naive datetime64 = UTC
        pd.Series([pd.Timestamp(moment, tz="UTC").tz_convert("Europe/Paris")]),  # tz-aware
        pd.Series([moment], dtype=object),  # python datetime object
        pd.Series(
            [moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))], dtype=object
        ),
        pd.Series(["2025-08-10T16:03:07+02:00"], dtype=object),  # ISO text with offset
    ]
    frames = [s.to_frame("at") for s in chunks]
    data = _write(tmp_path / "out.csv", frames, {"at": "datetime"})
    assert data == b"at\r\n" + b"2025-08-10T14:03:07.000000Z\r\n" * len(chunks)


def test_datetime_fraction_is_kept_to_the_microsecond() -> None:
    values = pd.Series(["2025-08-10 14:03:07.5", "2025-08-10 14:03:07.123456", None])
    expected = ["2025-08-10T14:03:07.500000Z", "2025-08-10T14:03:07.123456Z", None]
    assert _cells(values, "datetime") == expected


@pytest.mark.parametrize("kind", ["int", "float", "text", "bool", "datetime"])
def test_all_null_column_of_each_kind_writes_empty_fields(tmp_path: Path, kind: str) -> None:
    df = pd.DataFrame({"c": pd.Series([None, None], dtype=object), "id": [1, 2]})
    data = _write(tmp_path / "out.csv", [df], {"c": kind, "id": "int"})
    assert data == b"c,id\r\n,1\r\n,2\r\n"


def test_pandas_string_dtype_and_mixed_objects_are_text() -> None:
    assert _cells(pd.Series(["a", None], dtype="str"), "text") == ["a", None]
    mixed = pd.Series([1, "-b", None, float("nan"), ["x", 2]], dtype=object)
    assert _cells(mixed, "text") == ["1", "'-b", None, None, "['x', 2]"]


def test_single_column_empty_or_null_cell_is_written_as_quoted_empty_field(
    tmp_path: Path,
) -> None:
    df = pd.DataFrame({"name": ["a", "", None]})
    data = _write(tmp_path / "out.csv", [df], {"name": "text"})
    assert data == b'name\r\na\r\n""\r\n""\r\n'


def test_format_frame_returns_strings_and_none_in_the_frame_order() -> None:
    frame = _frame().set_axis([50_000, 50_001, 50_002])  # a later chunk's index
    out = format_frame(frame, KINDS)  # type: ignore[arg-type]
    assert list(out.columns) == COLUMNS
    assert list(out.index) == [50_000, 50_001, 50_002]
    assert out.iloc[1].tolist() == [
        "2",
        "-1.5",
        "'=SUM(A1)",
        "false",
        "2025-08-10T14:03:07.000000Z",
    ]
    assert out.iloc[2].tolist() == [None] * 5


def test_gzip_output_decompresses_to_the_plain_text(tmp_path: Path) -> None:
    plain = _write(tmp_path / "out.csv", [_frame(), _frame()], KINDS)
    packed = _write(tmp_path / "out.csv.gz", [_frame(), _frame()], KINDS, gzip=True)
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == plain


def test_excel_option_puts_a_bom_at_the_very_start(tmp_path: Path) -> None:
    plain = _write(tmp_path / "out.csv", [_frame()], KINDS)
    excel = _write(tmp_path / "excel.csv", [_frame()], KINDS, excel=True)
    assert excel == BOM + plain
    packed = _write(tmp_path / "excel.csv.gz", [_frame()], KINDS, gzip=True, excel=True)
    assert gzip.decompress(packed) == BOM + plain


@pytest.mark.parametrize("packed", [False, True])
def test_commit_reports_rows_bytes_and_sha256_of_the_file_on_disk(
    tmp_path: Path, packed: bool
) -> None:
    path = tmp_path / ("out.csv.gz" if packed else "out.csv")
    sink = CsvSink(path, columns=COLUMNS, kinds=KINDS, gzip=packed)  # type: ignore[arg-type]
    sink.write(_frame())
    sink.write(_frame())
    assert sink.rows == 6
    result = sink.commit()
    data = path.read_bytes()
    assert (result.path, result.rows) == (path, 6)
    assert result.bytes == len(data) == path.stat().st_size
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_final_path_never_holds_a_partial_file_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(path, columns=COLUMNS, kinds=KINDS)  # type: ignore[arg-type]
    sink.write(_frame())
    assert not path.exists()
    (temp,) = tmp_path.iterdir()
    assert temp == sink.temp_path
    assert temp.name.startswith(".out.csv.") and temp.name.endswith(TEMP_SUFFIX)
    sink.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_abort_removes_the_temporary_file_and_is_safe_twice(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "out.csv.gz", columns=COLUMNS, kinds=KINDS, gzip=True)  # type: ignore[arg-type]
    sink.write(_frame())
    sink.abort()
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="already closed"):
        sink.write(_frame())


def test_abort_after_commit_keeps_the_committed_file(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "out.csv", columns=COLUMNS, kinds=KINDS)  # type: ignore[arg-type]
    sink.write(_frame())
    sink.commit()
    sink.abort()
    assert (tmp_path / "out.csv").read_bytes().startswith(b"id,cost")
    with pytest.raises(RuntimeError, match="already closed"):
        sink.commit()


def test_exception_in_with_block_leaves_no_file(tmp_path: Path) -> None:
    with (
        pytest.raises(KeyError),
        CsvSink(tmp_path / "out.csv", columns=COLUMNS, kinds=KINDS) as sink,  # type: ignore[arg-type]
    ):
        sink.write(_frame())
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_leaving_with_block_without_commit_discards_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with CsvSink(tmp_path / "out.csv", columns=COLUMNS, kinds=KINDS) as sink:  # type: ignore[arg-type]
        sink.write(_frame())
    assert list(tmp_path.iterdir()) == []
    assert "without commit" in caplog.text


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import numpy as np
import pandas as pd
from nano_export.csvfmt import CsvSink

folder, packed = Path(sys.argv[1]), sys.argv[2] == "gz"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
rng = np.random.default_rng(1)
big = pd.DataFrame({"name": [rng.bytes(500).hex() for _ in range(40)]})  # 40 kB gzip cannot shrink
sink = CsvSink(folder / ("out.csv.gz" if packed else "out.csv"), columns=["name"],
               kinds={"name": "text"}, gzip=packed)
sink.write(big)
try:
    sink.commit()
except OSError as exc:
    print("refused:", exc.errno)
"""


@pytest.mark.parametrize("packed", [False, True])
def test_failed_write_surfaces_at_commit_and_leaves_no_file(tmp_path: Path, packed: bool) -> None:
    # A full disk, for real: a child process whose files may grow to 4 KiB only (the limit is
    # per process, so the test runner's own output is not affected).
    folder = tmp_path / "out"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(folder), "gz" if packed else "csv"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == f"refused: {errno.EFBIG}"
    assert list(folder.iterdir()) == []


def test_zero_rows_commit_a_header_only_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "out.csv", [_frame().iloc[0:0]], KINDS)
    assert data == b"id,cost,name,ok,at\r\n"


def test_chunk_with_other_columns_is_refused(tmp_path: Path) -> None:
    with CsvSink(tmp_path / "out.csv", columns=COLUMNS, kinds=KINDS) as sink:  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="differ"):
            sink.write(_frame()[list(reversed(COLUMNS))])
        sink.commit()


def test_column_without_a_kind_is_refused_before_any_file_exists(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one column"):
        CsvSink(tmp_path / "out.csv", columns=[], kinds={})
    with pytest.raises(ValueError, match="no kind given for column"):
        CsvSink(tmp_path / "out.csv", columns=["id", "extra"], kinds={"id": "int"})
    with pytest.raises(ValueError, match="no known kind"):
        format_frame(pd.DataFrame({"x": [1]}), {"x": "money"})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=30))
def test_any_text_round_trips_through_the_csv_module_as_guarded_text(texts: list[str]) -> None:
    df = pd.DataFrame({"id": range(len(texts)), "text": pd.Series(texts, dtype=object)})
    with tempfile.TemporaryDirectory() as folder:
        data = _write(Path(folder) / "out.csv", [df], {"id": "int", "text": "text"})
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["id", "text"]
    assert [r[1] for r in rows[1:]] == [guard_formula(t) for t in texts]


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.sampled_from([",", '"', "\r", "\n", "=", "-", "a", " "]), max_size=6))
def test_lone_text_column_round_trips_including_empty_strings(text: str) -> None:
    df = pd.DataFrame({"text": pd.Series([text, "x"], dtype=object)})
    with tempfile.TemporaryDirectory() as folder:
        data = _write(Path(folder) / "out.csv", [df], {"text": "text"})
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows == [["text"], [guard_formula(text)], ["x"]]


def test_the_formula_guard_touches_only_cells_that_start_like_a_formula() -> None:
    cells = [None, "=1", "", "-", "plain", "\rX", "é=", "@", None, "+x"]
    frame = pd.DataFrame({"t": pd.Series(cells, dtype="str")}).iloc[1:]  # a sliced column, too
    out = format_frame(frame, {"t": "text"})["t"].tolist()
    assert out == ["'=1", "", "'-", "plain", "'\rX", "é=", "'@", None, "'+x"]


_QUOTING_TEXT = st.text(alphabet=st.sampled_from([",", '"', "\r", "\n", "a", "é", "😀", " "]))


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(st.one_of(st.none(), _QUOTING_TEXT), min_size=1, max_size=40),
    start=st.integers(min_value=0, max_value=5),
)
def test_quoting_is_the_csv_modules_on_any_text_and_any_slice(
    cells: list[str | None], start: int
) -> None:
    # The text column sits between two numbers, and is a slice of a longer array (an offset
    # into its buffers), as the chunks of an export are.
    texts = pa.array(['x,"y"'] * start + cells, type=pa.large_string()).slice(start)
    numbers = pa.array([str(i) for i in range(len(cells))], type=pa.large_string())
    data = bytes(csvfmt.encode_rows([numbers, texts, numbers], text=[False, True, False]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows([str(i), "" if c is None else c, str(i)] for i, c in enumerate(cells))
    assert data == out.getvalue().encode("utf-8")
