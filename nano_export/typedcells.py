"""Typed cell values: every column of a chunk as an Arrow array of its kind's type.

The one place that decides what a chunk's values *are*, whatever dtype pandas chose for them:
``int`` → int64, ``float`` → float64, ``bool`` → bool, ``datetime`` → UTC microsecond timestamps,
``text`` → large_string. Null stays null. The CSV formatter (``csvcells``) turns these into text;
the typed writers (Parquet, JSON Lines, xlsx) write them as they are, so every format carries the
same values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    # pandas is imported where a frame is handled: frames come from read_sql, and an export read
    # by a native reader never loads pandas (about 40 MB of the process).
    import pandas as pd

    from nano_export.datasets import Kind

#: The Arrow type of text columns (64-bit offsets: no 2 GiB limit per chunk).
TEXT = pa.large_string()
#: The Arrow type of datetime columns: UTC, microseconds.
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "datetime": UTC_TIMESTAMP,
    "text": TEXT,
}
#: A chunk of rows: an Arrow table from the native readers, a DataFrame from ``read_sql``.
Chunk: TypeAlias = "pd.DataFrame | pa.Table"
#: One column of a chunk.
Column: TypeAlias = "pd.Series | pa.Array | pa.ChunkedArray"
_BOOL_WORDS = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def combined(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (Arrow may hand back a chunked one)."""
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


# --- Arrow values from Python and numpy, without pandas ---------------------------------------
#
# ``pa.array`` and ``pa.scalar`` first ask whether their argument is a pandas object, and that
# question imports pandas (about 40 MB of the process) whenever it is installed. An export read by
# a native reader has no other use for pandas, so its Arrow values are built from their buffers.


def _validity(valid: np.ndarray[Any, np.dtype[np.bool_]]) -> pa.Buffer | None:
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


_STRING_BYTES = 2**31 - 1  # the most a ``string`` array (32-bit offsets) holds


def arrow_texts(values: Sequence[str | None], kind: pa.DataType = TEXT) -> pa.Array:
    """``values`` as an Arrow text array of type ``kind`` (``string`` or ``large_string``);
    ArrowCapacityError when they are too many bytes for a ``string`` array."""
    if kind not in (TEXT, pa.string()):
        raise TypeError(f"arrow_texts builds string or large_string arrays, not {kind}")
    raw = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)), out=offsets[1:])
    if kind == pa.string():
        if offsets[-1] > _STRING_BYTES:
            raise pa.ArrowCapacityError(f"{offsets[-1]} bytes do not fit in a string array")
        offsets = offsets.astype(np.int32)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    buffers = [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
    return pa.Array.from_buffers(kind, len(raw), buffers, null_count=int((~valid).sum()))


def arrow_text(value: str, kind: pa.DataType = TEXT) -> pa.Scalar:
    """One text value as an Arrow scalar of type ``kind``."""
    return arrow_texts([value], kind)[0]


def arrow_bools(values: np.ndarray[Any, np.dtype[np.bool_]]) -> pa.Array:
    """A numpy bool array as an Arrow bool array (no nulls)."""
    bits = pa.py_buffer(np.packbits(values, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, bits])


def numpy_bools(arr: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """An Arrow bool array as a numpy bool array, null as False (``to_numpy`` imports pandas)."""
    if not pa.types.is_boolean(arr.type):
        raise TypeError(f"numpy_bools reads bool arrays, not {arr.type}")
    if arr.null_count:
        arr = pc.and_kleene(arr, pc.is_valid(arr))  # null AND false is false
    _, bits = arr.buffers()
    if bits is None:
        return np.zeros(len(arr), dtype=bool)
    raw = np.frombuffer(bits, dtype=np.uint8)
    unpacked = np.unpackbits(raw, count=arr.offset + len(arr), bitorder="little")
    return unpacked[arr.offset :].astype(bool)


def numpy_floats(arr: pa.Array) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A numeric Arrow array as a numpy float64 array, null as NaN (``to_numpy`` imports pandas)."""
    floats = pc.fill_null(pc.cast(arr, pa.float64()), _NAN)
    _, data = floats.buffers()
    if data is None:
        return np.zeros(0, dtype=np.float64)
    values = np.frombuffer(data, dtype=np.float64)
    return values[floats.offset : floats.offset + len(floats)].copy()


def arrow_ints(values: np.ndarray[Any, Any]) -> pa.Array:
    """A numpy integer array as an Arrow int64 array (no nulls)."""
    data = pa.py_buffer(np.ascontiguousarray(values, dtype=np.int64))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, data])


def arrow_number(value: int | float) -> pa.Scalar:
    """One int (int64) or float (float64) as an Arrow scalar."""
    if isinstance(value, int):
        return arrow_ints(np.array([value]))[0]
    data = pa.py_buffer(np.array([value], dtype=np.float64))
    return pa.Array.from_buffers(pa.float64(), 1, [None, data])[0]


#: ``False`` as an Arrow scalar (for ``pc.fill_null`` and the like).
FALSE = arrow_bools(np.zeros(1, dtype=bool))[0]
#: The empty text as an Arrow scalar (the separator of ``pc.binary_join_element_wise``, …).
EMPTY = arrow_text("")
_NAN = arrow_number(float("nan"))
_ZERO, _ONE = arrow_ints(np.array([0, 1]))


def is_null(value: Any) -> bool:
    """None, NaN, NA or NaT (scalars only: a list in a cell is a value, not a null mask)."""
    pd = sys.modules.get("pandas")  # without pandas loaded, no value is its NA or NaT
    return (
        value is None
        or (pd is not None and (value is pd.NA or value is pd.NaT))
        or (isinstance(value, float) and np.isnan(value))
    )


def chunk_names(chunk: Chunk) -> list[str]:
    """The column names of a chunk, in order."""
    if isinstance(chunk, pa.Table):
        return list(chunk.column_names)
    return [str(name) for name in chunk.columns]


def chunk_columns(chunk: Chunk) -> list[Column]:
    """The columns of a chunk, in order (by position: names need not be unique in a frame)."""
    if isinstance(chunk, pa.Table):
        return list(chunk.columns)
    return [chunk.iloc[:, i] for i in range(chunk.shape[1])]


def chunk_column(chunk: Chunk, name: str) -> Column:
    """The column ``name`` of a chunk."""
    return chunk.column(name) if isinstance(chunk, pa.Table) else chunk[name]


def chunk_slice(chunk: Chunk, start: int, rows: int) -> Chunk:
    """Up to ``rows`` rows of a chunk from position ``start`` (a view, not a copy)."""
    if isinstance(chunk, pa.Table):
        return chunk.slice(start, rows)
    return chunk.iloc[start : start + rows]


def is_arrow(column: Column) -> bool:
    """Whether a column is Arrow's (a native reader's) rather than a pandas Series."""
    return isinstance(column, pa.Array | pa.ChunkedArray)


def _series(column: Column) -> pd.Series:
    """The column as pandas holds it (the slow paths for values of unexpected types). Ints with
    nulls stay ints (Python ints beside None), as ``read_sql``'s nullable columns keep them."""
    if is_arrow(column):
        series: pd.Series = column.to_pandas(integer_object_nulls=True)
        return series
    return column


def _name(column: Column) -> str | None:
    return None if is_arrow(column) else str(column.name)


def as_arrow(series: Column) -> pa.Array | pa.ChunkedArray | None:
    """The column as Arrow (pandas nulls → Arrow nulls), or None when the types are mixed."""
    if is_arrow(series):
        return series
    import pandas as pd  # a Series: read_sql has loaded pandas

    if isinstance(series.dtype, pd.Float64Dtype | pd.Float32Dtype):
        # read_sql's nullable floats may hold NaN beside NA: both are a NULL in the database.
        return pa.array(series.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def numbers(series: Column, name: str | None = None) -> pa.Array | pa.ChunkedArray:
    """Numbers as Arrow ints or floats; text holding numbers is parsed, anything else raises
    (naming the column: ``name``, or the Series' own)."""
    arr = as_arrow(series)
    if arr is not None and pa.types.is_floating(arr.type):
        return _nan_as_null(arr)
    if arr is not None and (pa.types.is_integer(arr.type) or pa.types.is_null(arr.type)):
        return arr
    if arr is not None and pa.types.is_boolean(arr.type):
        return pc.cast(arr, pa.int8())
    import pandas as pd

    series = _series(series)
    try:
        parsed = pd.to_numeric(
            series.astype(object), errors="raise", dtype_backend="numpy_nullable"
        )
    except (ValueError, TypeError) as exc:
        label = series.name if name is None else name
        raise ValueError(f"column {label!r} should hold numbers: {exc}") from None
    return pa.array(parsed, from_pandas=True)


def _nan_as_null(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Floats with NaN as null: a file has one empty value, whichever the database stored."""
    nan = pc.is_nan(arr)
    if not pc.any(nan).as_py():
        return arr
    return pc.if_else(nan, pa.nulls(1, arr.type)[0], arr)


def _to_bool(value: Any) -> bool | None:
    if is_null(value):
        return None
    word = str(value).strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError(f"not a boolean: {value!r}")
    return _BOOL_WORDS[word]


def flags(series: Column) -> pa.Array:
    """Booleans (from bool, 0/1, 0.0/1.0, ``t``/``f``, ``true``/``false`` and nulls); any other
    number raises, whichever dtype holds it."""
    arr = as_arrow(series)
    if arr is not None and (pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type)):
        return combined(pc.cast(arr, pa.bool_()))
    if arr is not None and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        arr = _nan_as_null(arr) if pa.types.is_floating(arr.type) else arr
        bits = pc.or_(pc.equal(arr, _ZERO), pc.equal(arr, _ONE))
        bad = arr.filter(pc.invert(bits))  # nulls are dropped: null is a boolean's null
        if len(bad):
            raise ValueError(f"not a boolean: {bad[0].as_py()!r}")
        return combined(pc.cast(arr, pa.bool_()))
    series = _series(series)
    try:
        values = series.astype("boolean")
    except (TypeError, ValueError):
        values = series.map(_to_bool).astype("boolean")
    return combined(pa.array(values, type=pa.bool_(), from_pandas=True))


def _parse_naive_text(series: Column) -> pa.Array | pa.ChunkedArray | None:
    """SQLite's ``2025-08-10 14:03:07[.123456]`` text, parsed by Arrow (much faster than pandas)."""
    arr = as_arrow(series)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    try:
        return pc.cast(arr, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def timestamps(series: Column) -> pa.Array:
    """UTC instants as naive microsecond timestamps (naive database values are UTC)."""
    if is_arrow(series) and pa.types.is_timestamp(series.type):
        return combined(pc.cast(series, pa.timestamp("us"), safe=False))  # Arrow keeps UTC
    if not is_arrow(series):
        import pandas as pd  # a Series: read_sql has loaded pandas

        if isinstance(series.dtype, pd.DatetimeTZDtype):
            return _naive_us(series.dt.tz_convert("UTC").dt.tz_localize(None))
        if pd.api.types.is_datetime64_dtype(series.dtype):
            return _naive_us(series)
    arr = _parse_naive_text(series)
    if arr is not None:
        return combined(arr)
    import pandas as pd  # datetime objects, offsets or a mix: pandas (naive values are UTC)

    stamps = pd.to_datetime(_series(series), utc=True, format="ISO8601")
    return _naive_us(stamps.dt.tz_localize(None))


def _naive_us(stamps: pd.Series) -> pa.Array:
    values = stamps.to_numpy(dtype="datetime64[us]")
    return combined(pa.array(values, type=pa.timestamp("us"), from_pandas=True))


def texts(series: Column) -> pa.Array:
    """Text as large_string, exactly as stored (anything else through ``str``)."""
    arr = as_arrow(series)
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        if arr is not None and pa.types.is_null(arr.type):
            return pa.nulls(len(series), TEXT)
        series = _series(series)
        arr = pa.array([None if is_null(v) else str(v) for v in series.astype(object)], TEXT)
    return combined(pc.cast(arr, TEXT))


def _typed_int(series: Column, name: str | None) -> pa.Array:
    arr = numbers(series, name)
    try:
        return combined(pc.cast(arr, pa.int64()))  # a safe cast: refuses fractions
    except pa.ArrowInvalid:
        raise ValueError(f"int column {name!r} holds fractions") from None


def _typed_float(series: Column, name: str | None) -> pa.Array:
    return combined(pc.cast(numbers(series, name), pa.float64()))


def _typed_datetime(series: Column, name: str | None) -> pa.Array:
    return combined(pc.cast(timestamps(series), UTC_TIMESTAMP))


_TYPED: dict[str, Callable[[Column, str | None], pa.Array]] = {
    "int": _typed_int,
    "float": _typed_float,
    "bool": lambda series, name: flags(series),
    "datetime": _typed_datetime,
    "text": lambda series, name: texts(series),
}


def typed_column(series: Column, kind: Kind, name: str | None = None) -> pa.Array:
    """One column as an Arrow array of its kind's type (see ``ARROW_TYPES``); errors name the
    column (``name``, or a Series' own: an Arrow column has none)."""
    name = _name(series) if name is None else name
    if kind not in _TYPED:
        raise ValueError(f"column {name!r} has no known kind (got {kind!r})")
    return _TYPED[kind](series, name)


def arrow_schema(
    columns: Sequence[str], kinds: Mapping[str, Kind], metadata: Mapping[str, str] | None = None
) -> pa.Schema:
    """The Arrow schema of a file with these columns, optionally with key-value metadata."""
    fields = [pa.field(name, ARROW_TYPES[kinds[name]]) for name in columns]
    return pa.schema(fields, metadata=dict(metadata) if metadata else None)


def typed_table(df: Chunk, kinds: Mapping[str, Kind]) -> pa.Table:
    """A chunk as an Arrow table whose columns have their kinds' types."""
    names = chunk_names(df)
    columns = chunk_columns(df)
    arrays = [
        typed_column(column, kinds[name], name) for name, column in zip(names, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(names, kinds))


def _same_family(got: pa.DataType, want: pa.DataType) -> bool:
    """Types the rest of the engine treats alike: any string width, any integer width."""
    text = (pa.types.is_string, pa.types.is_large_string)
    return (any(t(got) for t in text) and any(t(want) for t in text)) or (
        pa.types.is_integer(got) and pa.types.is_integer(want)
    )


def arrow_table(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows from a native reader as a table with the schema's column names, each column of its
    kind's type.

    Columns already of their kind's family (varchar for text, int4 for int) are kept as they are:
    casting them would copy every value for nothing.
    """
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        keep = column.type == field.type or _same_family(column.type, field.type)
        columns.append(column if keep else column.cast(field.type))
    return pa.Table.from_arrays(columns, names=schema.names)


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The rows of ``batches`` regrouped into tables of exactly ``rows`` rows (the last may have
    fewer). A table within one batch is a slice of it; one across two is joined into one.

    Native readers cut their batches by their own rules (bytes, a first row of their own); the
    export's chunks are cut where ``read_sql`` cuts them, so that every path writes the same file.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        start = 0
        while start < batch.num_rows:
            piece = batch.slice(start, rows - held)
            pending.append(piece)
            held += piece.num_rows
            start += piece.num_rows
            if held == rows:
                yield _joined(pending)
                pending, held = [], 0
    if pending:
        yield _joined(pending)


def _joined(pieces: list[pa.RecordBatch]) -> pa.Table:
    # A table over pieces of two batches would keep both batches alive as long as it lives, and
    # every later step would join its chunked columns anyway: join them once, here.
    table = pa.Table.from_batches(pieces)
    return table.combine_chunks() if len(pieces) > 1 else table
