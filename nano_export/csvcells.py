"""Cell formatting for CSV files: every value of a chunk as the exact text the file carries.

One column at a time, with Arrow compute kernels (fast, and the same whatever dtype pandas chose
for the chunk): ints without ``.0``, floats as their shortest round-trip digits in plain notation,
``true``/``false``, UTC timestamps as ``2025-08-10T14:03:07.123456Z`` (always six fractional
digits), and text with the formula guard. Null stays null. Quoting and rows are ``csvfmt``'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nano_export.typedcells import (
    EMPTY,
    FALSE,
    TEXT,
    Chunk,
    Column,
    arrow_bools,
    arrow_text,
    arrow_texts,
    chunk_columns,
    chunk_names,
    combined,
    flags,
    numbers,
    numpy_bools,
    texts,
    timestamps,
)

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    import pandas as pd

    from nano_export.datasets import Kind

logger = logging.getLogger(__name__)

#: Characters that make a spreadsheet treat a cell as a formula.
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")

_ZULU = arrow_text("Z")
_APOSTROPHE = arrow_text("'")
_TRUE_TEXT = arrow_text("true")
_FALSE_TEXT = arrow_text("false")
_FORMULA_BYTES = np.zeros(256, dtype=bool)
_FORMULA_BYTES[list("".join(FORMULA_CHARS).encode())] = True
_NO_BYTES = np.zeros(0, dtype=np.uint8)


def guard_formula(text: str) -> str:
    """``text`` with a leading ``'`` when it starts like a spreadsheet formula."""
    return "'" + text if text.startswith(FORMULA_CHARS) else text


def _plain(value: float) -> str:
    """The shortest repr of ``value`` in plain notation: 1e-05 → 0.00001, 1e+16 → 1 and 16 zeros."""
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _float_cells(series: Column, name: str | None = None) -> pa.Array:
    arr = numbers(series, name)
    if not pa.types.is_floating(arr.type):
        arr = pc.cast(arr, pa.float64())
    out = combined(pc.cast(arr, TEXT))  # shortest round-trip digits, "2" for 2.0
    # Arrow writes very small and very large magnitudes with an exponent: rewrite those few.
    exponent = pc.fill_null(pc.match_substring(out, "e"), FALSE)
    if pc.any(exponent).as_py():
        values = out.to_pylist()
        for i in np.flatnonzero(numpy_bools(exponent)):
            text = values[i]
            if text is not None and text not in ("inf", "-inf"):
                values[i] = _plain(float(text))
        out = arrow_texts(values)
    return out


def _int_cells(series: Column, name: str | None = None) -> pa.Array:
    arr = numbers(series, name)
    if pa.types.is_floating(arr.type):  # REAL values in an int column, or a float64 frame
        try:
            arr = pc.cast(arr, pa.int64())  # a safe cast: refuses fractions
        except pa.ArrowInvalid:
            logger.warning("int column %r holds fractions; writing them as decimals", name)
            return _float_cells(series, name)
    return combined(pc.cast(arr, TEXT))


def _bool_cells(series: Column, name: str | None = None) -> pa.Array:
    arr = flags(series)
    return combined(pc.if_else(arr, _TRUE_TEXT, _FALSE_TEXT))


def _datetime_cells(series: Column, name: str | None = None) -> pa.Array:
    arr = timestamps(series)
    # A microsecond timestamp casts to "YYYY-MM-DD HH:MM:SS.ffffff" (always six digits): one
    # format for every row. Much faster than pc.strftime.
    text = pc.replace_substring(pc.cast(arr, TEXT), " ", "T", max_replacements=1)
    return combined(pc.binary_join_element_wise(text, _ZULU, EMPTY))


def _text_cells(series: Column, name: str | None = None) -> pa.Array:
    arr = texts(series)
    data, offsets = bytes_of(arr)
    # The formula guard from the first byte of each cell: a few cells get the ' prefix, the rest
    # of the column is not copied (a regex replace over the column rewrote every cell).
    filled = offsets[1:] > offsets[:-1]
    guard = np.zeros(len(arr), dtype=bool)
    guard[filled] = _FORMULA_BYTES[data[offsets[:-1][filled]]]
    if not guard.any():
        return arr
    mask = arrow_bools(guard)
    prefixed = pc.binary_join_element_wise(_APOSTROPHE, arr.filter(mask), EMPTY)
    return combined(pc.replace_with_mask(arr, mask, prefixed))


def bytes_of(arr: pa.Array) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, Any]]:
    """The UTF-8 bytes and the offsets of a large_string array's values (no copy)."""
    _validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else _NO_BYTES
    return data, offsets


_FORMATTERS: dict[str, Callable[[Column, str | None], pa.Array]] = {
    "int": _int_cells,
    "float": _float_cells,
    "text": _text_cells,
    "bool": _bool_cells,
    "datetime": _datetime_cells,
}


def format_cells(df: Chunk, kinds: Mapping[str, Kind], *, guard: bool = True) -> list[pa.Array]:
    """Each column of ``df`` formatted by its kind, as a large_string Arrow array.

    ``guard=False`` leaves text exactly as it is (no formula guard), for formats that are not
    opened by spreadsheets as text.
    """
    cells = []
    for name, series in zip(chunk_names(df), chunk_columns(df), strict=True):
        kind = kinds.get(name)
        if kind not in _FORMATTERS:
            raise ValueError(f"column {name!r} has no known kind (got {kind!r})")
        cells.append(
            texts(series) if kind == "text" and not guard else _FORMATTERS[kind](series, name)
        )
    return cells


def format_frame(df: pd.DataFrame, kinds: Mapping[str, Kind]) -> pd.DataFrame:
    """Every cell as the text written to the file (before CSV quoting); None for null."""
    import pandas as pd  # a DataFrame: its caller has loaded pandas

    cells = format_cells(df, kinds)
    values = {
        name: pd.Series(arr.to_pylist(), dtype=object, index=df.index)
        for name, arr in zip(df.columns, cells, strict=True)
    }
    return pd.DataFrame(values, index=df.index, columns=df.columns)
