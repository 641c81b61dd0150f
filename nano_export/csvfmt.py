"""CSV files as the spec defines them, written fast and never left half-written at the final path.

Format (SPEC "CSV"): UTF-8, comma, RFC 4180 quoting (only fields holding a comma, quote, CR or LF
are quoted; quotes are doubled), one header row, CRLF (``\\r\\n``) after every row as RFC 4180
says. Timestamps are UTC in one fixed format, ``2025-08-10T14:03:07.123456Z`` (always six
fractional digits, whatever the chunk holds); booleans ``true``/``false``; null is an empty field;
numbers in plain notation (``0.00001``, never ``1e-05``; whole numbers without ``.0``, also in
float columns); text cells starting with ``= + - @``, tab or CR get a leading ``'``.

Cells are formatted per column with Arrow compute kernels and each chunk is assembled into one
buffer of CSV bytes (see ``bench/csv_bench.py`` for the figures behind this choice); one writer
thread compresses, hashes (sha256 while writing, never re-reading) and writes a chunk while the
next is formatted. The file goes to a temporary name ``.<final name>.<random>.part`` in the same
folder and is renamed on :meth:`CsvSink.commit`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip as gzip_module
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind

logger = logging.getLogger(__name__)

#: Row terminator of every file (RFC 4180).
LINE_END = "\r\n"
#: Suffix of temporary files; a process that died mid-export may leave ``.<name>.*.part`` behind.
TEMP_SUFFIX = ".part"
#: zlib level for ``.csv.gz``: level 1 is several times faster than 6 for a few % more bytes.
GZIP_LEVEL = 1
#: The UTF-8 byte order mark written first with ``excel=True``.
BOM = "\ufeff".encode()
#: Characters that make a spreadsheet treat a cell as a formula.
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")

_STR = pa.large_string()
_COMMA = pa.scalar(",", _STR)
_EMPTY = pa.scalar("", _STR)
_EOL = pa.scalar(LINE_END, _STR)
_QUOTE = pa.scalar('"', _STR)
_ZULU = pa.scalar("Z", _STR)
_NEEDS_QUOTES = '[,"\r\n]'
_FORMULA_START = "^[=+\\-@\t\r]"
_SPECIAL_BYTES = np.zeros(256, dtype=bool)
_SPECIAL_BYTES[list(b',"\r\n')] = True
_FORMULA_BYTES = np.zeros(256, dtype=bool)
_FORMULA_BYTES[list("".join(FORMULA_CHARS).encode())] = True
_NO_BYTES = np.zeros(0, dtype=np.uint8)
_SCAN_BYTES_PER_ROW = 64
_BOOL_WORDS = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


@dataclass(frozen=True)
class SinkResult:
    """A committed file: its final path, data rows, size on disk and sha256 (hex) of its bytes."""

    path: Path
    rows: int
    bytes: int
    sha256: str


def guard_formula(text: str) -> str:
    """``text`` with a leading ``'`` when it starts like a spreadsheet formula."""
    return "'" + text if text.startswith(FORMULA_CHARS) else text


# --- cell formatting -------------------------------------------------------------------------


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray | None:
    """The column as Arrow (pandas nulls → Arrow nulls), or None when the types are mixed."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _numeric(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """Numbers as Arrow ints or floats; text holding numbers is parsed, anything else raises."""
    arr = _arrow(series)
    if arr is not None and (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_null(arr.type)
    ):
        return arr
    if arr is not None and pa.types.is_boolean(arr.type):
        return pc.cast(arr, pa.int8())
    try:
        parsed = pd.to_numeric(series.astype(object), errors="raise")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"column {series.name!r} should hold numbers: {exc}") from None
    return pa.array(parsed, from_pandas=True)


def _plain(value: float) -> str:
    """The shortest repr of ``value`` in plain notation: 1e-05 → 0.00001, 1e+16 → 1 and 16 zeros."""
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _float_cells(series: pd.Series) -> pa.Array:
    arr = _numeric(series)
    if not pa.types.is_floating(arr.type):
        arr = pc.cast(arr, pa.float64())
    out = _combined(pc.cast(arr, _STR))  # shortest round-trip digits, "2" for 2.0
    # Arrow writes very small and very large magnitudes with an exponent: rewrite those few.
    exponent = pc.fill_null(pc.match_substring(out, "e"), False)
    if pc.any(exponent).as_py():
        values = out.to_pylist()
        for i in np.flatnonzero(exponent.to_numpy(zero_copy_only=False)):
            text = values[i]
            if text is not None and text not in ("inf", "-inf"):
                values[i] = _plain(float(text))
        out = pa.array(values, _STR)
    return out


def _int_cells(series: pd.Series) -> pa.Array:
    arr = _numeric(series)
    if pa.types.is_floating(arr.type):  # ints with nulls arrive as float64 + NaN
        try:
            arr = pc.cast(arr, pa.int64())  # a safe cast: refuses fractions
        except pa.ArrowInvalid:
            logger.warning("int column %r holds fractions; writing them as decimals", series.name)
            return _float_cells(series)
    return _combined(pc.cast(arr, _STR))


def _is_null(value: Any) -> bool:
    """None, NaN, NA or NaT (scalars only: a list in a cell is a value, not a null mask)."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and np.isnan(value))
    )


def _to_bool(value: Any) -> bool | None:
    if _is_null(value):
        return None
    word = str(value).strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError(f"not a boolean: {value!r}")
    return _BOOL_WORDS[word]


def _bool_cells(series: pd.Series) -> pa.Array:
    try:
        flags = series.astype("boolean")  # bool, 0/1, 0.0/1.0 and None
    except (TypeError, ValueError):
        flags = series.map(_to_bool).astype("boolean")
    arr = pa.array(flags, from_pandas=True)
    return _combined(pc.if_else(arr, pa.scalar("true", _STR), pa.scalar("false", _STR)))


def _parse_naive_text(series: pd.Series) -> pa.Array | pa.ChunkedArray | None:
    """SQLite's ``2025-08-10 14:03:07[.123456]`` text, parsed by Arrow (much faster than pandas)."""
    arr = _arrow(series)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    try:
        return pc.cast(arr, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _datetime_cells(series: pd.Series) -> pa.Array:
    arr: pa.Array | pa.ChunkedArray | None = None
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        stamps = series  # naive datetimes from the database are UTC
    else:
        arr = _parse_naive_text(series)
        if arr is None:  # datetime objects, offsets or a mix: pandas (naive values are UTC)
            stamps = pd.to_datetime(series, utc=True, format="ISO8601").dt.tz_localize(None)
    if arr is None:
        values = stamps.to_numpy(dtype="datetime64[us]")
        arr = pa.array(values, type=pa.timestamp("us"), from_pandas=True)
    # A microsecond timestamp casts to "YYYY-MM-DD HH:MM:SS.ffffff" (always six digits): one
    # format for every row. Much faster than pc.strftime.
    text = pc.replace_substring(pc.cast(arr, _STR), " ", "T", max_replacements=1)
    return _combined(pc.binary_join_element_wise(text, _ZULU, _EMPTY))


def _text_cells(series: pd.Series) -> pa.Array:
    arr = _arrow(series)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        if arr is not None and pa.types.is_null(arr.type):
            return pa.nulls(len(series), _STR)
        arr = pa.array([None if _is_null(v) else str(v) for v in series.astype(object)], _STR)
    arr = _combined(pc.cast(arr, _STR))
    data, offsets = _bytes_of(arr)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    if not _FORMULA_BYTES[data[starts]].any():  # no cell starts like a formula: skip the regex
        return arr
    return pc.replace_substring_regex(arr, pattern=_FORMULA_START, replacement="'\\0")


def _bytes_of(arr: pa.Array) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, Any]]:
    """The UTF-8 bytes and the offsets of a large_string array's values (no copy)."""
    _validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else _NO_BYTES
    return data, offsets


def _combined(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


_FORMATTERS: dict[str, Callable[[pd.Series], pa.Array]] = {
    "int": _int_cells,
    "float": _float_cells,
    "text": _text_cells,
    "bool": _bool_cells,
    "datetime": _datetime_cells,
}


def _format_cells(df: pd.DataFrame, kinds: Mapping[str, Kind]) -> list[pa.Array]:
    cells = []
    for position, name in enumerate(df.columns):
        kind = kinds.get(name)
        if kind not in _FORMATTERS:
            raise ValueError(f"column {name!r} has no known kind (got {kind!r})")
        cells.append(_FORMATTERS[kind](df.iloc[:, position]))
    return cells


def format_frame(df: pd.DataFrame, kinds: Mapping[str, Kind]) -> pd.DataFrame:
    """Every cell as the text written to the file (before CSV quoting); None for null."""
    cells = _format_cells(df, kinds)
    values = {
        name: pd.Series(arr.to_pylist(), dtype=object, index=df.index)
        for name, arr in zip(df.columns, cells, strict=True)
    }
    return pd.DataFrame(values, index=df.index, columns=df.columns)


# --- CSV assembly ----------------------------------------------------------------------------


def _quoted(arr: pa.Array) -> pa.Array:
    """RFC 4180: fields holding a comma, quote, CR or LF in quotes, with quotes doubled."""
    data, offsets = _bytes_of(arr)
    # A byte scan is cheaper than the regex for short cells; long ones nearly always need quotes.
    if (
        offsets[-1] - offsets[0] <= _SCAN_BYTES_PER_ROW * len(arr)
        and not _SPECIAL_BYTES[data[offsets[0] : offsets[-1]]].any()
    ):
        return arr
    needs = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_QUOTES), False)
    if not pc.any(needs).as_py():
        return arr
    # Only cells that need quotes hold '"', so doubling quotes everywhere is safe; a per-row
    # quote-or-nothing affix is much cheaper than choosing between two long strings.
    affix = pc.if_else(needs, _QUOTE, _EMPTY)
    return pc.binary_join_element_wise(affix, pc.replace_substring(arr, '"', '""'), affix, _EMPTY)


def encode_rows(cells: Sequence[pa.Array], *, text: Sequence[bool] | None = None) -> memoryview:
    """The CSV bytes of formatted columns (one row per element), each row ending in CRLF.

    ``text[i]`` false promises that column ``i`` never needs quotes (numbers, booleans, times).
    """
    fields = [
        _quoted(c) if (text is None or text[i]) and c.null_count < len(c) else c
        for i, c in enumerate(cells)
    ]
    last = pc.fill_null(fields[-1], _EMPTY)
    if len(fields) == 1:  # a lone empty field would be an empty line: write it as ""
        last = pc.if_else(pc.equal(last, _EMPTY), pa.scalar('""', _STR), last)
    fields[-1] = pc.binary_join_element_wise(last, _EOL, _EMPTY)
    lines = _combined(
        pc.binary_join_element_wise(*fields, _COMMA, null_handling="replace", null_replacement="")
    )
    if len(lines) == 0:
        return memoryview(b"")
    # The data buffer of a string array holds its values back to back: that is the chunk's text.
    _validity, offsets_buf, data = lines.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(data)[start:end]


def header_line(columns: Sequence[str]) -> bytes:
    """The header row: column names, formula-guarded and quoted like any text cell."""
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_END).writerow([guard_formula(c) for c in columns])
    return out.getvalue().encode()


# --- the sink --------------------------------------------------------------------------------


class _Digest:
    """A binary writer in front of the file that hashes and counts every byte written."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.sha.update(data)
        written = self.raw.write(data)
        self.size += written
        return written

    def flush(self) -> None:
        self.raw.flush()


class CsvSink:
    """One CSV file written chunk by chunk to a temporary name and renamed on :meth:`commit`.

    Use as a context manager: leaving the block by an exception (or without commit) removes the
    temporary file; a final path never holds a partial file.
    """

    def __init__(
        self,
        path: Path,
        *,
        columns: Sequence[str],
        kinds: Mapping[str, Kind],
        gzip: bool = False,
        excel: bool = False,
    ) -> None:
        if not columns:
            raise ValueError("a CSV file needs at least one column")
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        self.path = Path(path)
        self.columns = list(columns)
        self.kinds = dict(kinds)
        self.gzip = gzip
        self._text = [self.kinds[c] == "text" for c in self.columns]
        self._rows = 0
        self._done = False
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX
        )
        self.temp_path = Path(temp)
        self._raw = os.fdopen(fd, "wb")
        self._digest = _Digest(self._raw)
        self._out: _Digest | gzip_module.GzipFile = self._digest
        # One writer thread compresses, hashes and writes chunk N while chunk N+1 is formatted
        # (zlib, hashlib and file writes release the GIL); at most one chunk waits in memory.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-writer")
        self._pending: Future[int] | None = None
        if gzip:
            name = self.path.name.removesuffix(".gz")
            self._out = gzip_module.GzipFile(
                filename=name, mode="wb", fileobj=self._digest, compresslevel=GZIP_LEVEL, mtime=0
            )
        logger.debug("writing %s via %s", self.path, self.temp_path)
        try:
            self._out.write((BOM if excel else b"") + header_line(self.columns))
        except BaseException:
            self.abort()
            raise

    @property
    def rows(self) -> int:
        """Data rows written so far (the last chunk may still be on its way to the file)."""
        return self._rows

    def _wait(self) -> None:
        """Wait for the chunk in flight; its write error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def write(self, df: pd.DataFrame) -> None:
        """Format and append one chunk whose columns are exactly ``columns``, in order."""
        if self._done:
            raise RuntimeError(f"CSV sink for {self.path} is already closed")
        if list(df.columns) != self.columns:
            raise ValueError(
                f"chunk columns {list(df.columns)} differ from the file's {self.columns}"
            )
        if len(df) == 0:
            return
        data = encode_rows(_format_cells(df, self.kinds), text=self._text)
        self._wait()
        self._pending = self._writer.submit(self._out.write, data)
        self._rows += len(df)

    def commit(self) -> SinkResult:
        """Flush, fsync and rename the temporary file to the final path; return what was written."""
        if self._done:
            raise RuntimeError(f"CSV sink for {self.path} is already closed")
        try:
            self._wait()
            self._writer.shutdown()
            if isinstance(self._out, gzip_module.GzipFile):
                self._out.close()  # writes the gzip trailer through the digest
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        _fsync_dir(self.path.parent)
        result = SinkResult(self.path, self._rows, self._digest.size, self._digest.sha.hexdigest())
        logger.info("wrote %s: %d rows, %d bytes", self.path, result.rows, result.bytes)
        return result

    def abort(self) -> None:
        """Remove the temporary file; safe to call twice or after commit."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):  # a failed write is why we are aborting
            self._wait()
        self._writer.shutdown()
        try:
            if isinstance(self._out, gzip_module.GzipFile):
                self._out.close()  # so it does not try to flush into a closed file later
        except (OSError, ValueError):
            pass
        finally:
            self._raw.close()
        self.temp_path.unlink(missing_ok=True)
        logger.info("discarded partial %s after %d rows", self.path, self._rows)

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            if exc_type is None:
                logger.warning("CSV sink for %s left without commit; discarding it", self.path)
            self.abort()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
