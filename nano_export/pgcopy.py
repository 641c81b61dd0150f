"""PostgreSQL's fast read path: the plan's SELECT streamed with ``COPY … TO STDOUT`` as CSV.

Building a Python object per cell (psycopg rows, SQLAlchemy rows, then pandas columns from those
objects) is where most of a PostgreSQL export's time went. Here the server writes CSV, psycopg
hands over its bytes, and Arrow's C++ CSV parser builds the columns directly.

- The statement is the plan's own compiled SELECT. COPY takes no bound parameters, so the filter
  values are rendered into the statement by psycopg's client-side literal adaptation
  (``ClientCursor.mogrify``, the same quoting psycopg's ``ClientCursor`` uses for every query);
  no value is ever formatted into SQL here.
- The server sends one CopyData message per row (PostgreSQL protocol, "COPY Operations"), so
  ``chunk_rows`` messages are exactly ``chunk_rows`` whole rows: each chunk's bytes are parsed on
  their own, whatever the length of a row, and memory holds one chunk (bytes, columns, frame) at a
  time. Nothing buffers the whole result.
- Output settings that shape the text are fixed for the transaction (``SET LOCAL``): UTC, ISO
  dates, shortest exact floats. Arrow reads each column with the type its kind implies; an
  unquoted empty field is NULL while a quoted one (``""``) is an empty string.
- Closing the generator mid-stream leaves the ``with copy`` block by GeneratorExit: psycopg sends
  a cancel request and drains what is left, and the caller's transaction is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import ClientCursor
from sqlalchemy import Connection, Select

from nano_export.datasets import Kind
from nano_export.db import compile_bound

log = logging.getLogger(__name__)

#: Arrow type each column kind is parsed as.
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "text": pa.large_string(),
}
#: Session settings that fix how the server writes values, undone when the transaction ends.
SETTINGS = (
    "SET LOCAL TIME ZONE 'UTC'",
    "SET LOCAL DateStyle = 'ISO'",
    "SET LOCAL extra_float_digits = 3",
)
_MIN_BLOCK = 1 << 20


def usable(conn: Connection) -> bool:
    """Whether ``conn`` can take the COPY path: PostgreSQL through psycopg 3, talking UTF-8."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return False
    raw: Any = conn.connection.dbapi_connection
    return bool(raw.info.encoding == "utf-8")


def copy_sql(conn: Connection, stmt: Select[Any]) -> str:
    """``COPY (<stmt>) TO STDOUT`` as CSV, its parameters quoted by psycopg."""
    compiled, values = compile_bound(conn, stmt)
    raw: Any = conn.connection.dbapi_connection
    # psycopg's literal adaptation (the client-side binding of ClientCursor); always with a
    # mapping, so that the compiler's escaped %% become % even when there are no parameters.
    select_sql = ClientCursor(raw).mogrify(str(compiled), values)
    return f"COPY ({select_sql}) TO STDOUT WITH (FORMAT csv, HEADER false)"


def _options(
    names: Sequence[str], kinds: Mapping[str, Kind]
) -> tuple[pcsv.ParseOptions, pcsv.ConvertOptions]:
    parse = pcsv.ParseOptions(newlines_in_values=True)
    convert = pcsv.ConvertOptions(
        column_types={n: ARROW_TYPES[kinds[n]] for n in names},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
        true_values=["t"],
        false_values=["f"],
    )
    return parse, convert


def _frame(
    data: bytearray,
    longest: int,
    names: Sequence[str],
    parse: pcsv.ParseOptions,
    convert: pcsv.ConvertOptions,
) -> pd.DataFrame:
    """One chunk of COPY rows as a DataFrame."""
    # Blocks larger than the longest row: Arrow cannot parse a row spread over three blocks.
    block = max(_MIN_BLOCK, 2 * longest + 1)
    read = pcsv.ReadOptions(column_names=list(names), block_size=block, use_threads=False)
    table = pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),
        read_options=read,
        parse_options=parse,
        convert_options=convert,
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _empty(names: Sequence[str], kinds: Mapping[str, Kind]) -> pd.DataFrame:
    schema = pa.schema([(n, ARROW_TYPES[kinds[n]]) for n in names])
    frame: pd.DataFrame = schema.empty_table().to_pandas()
    return frame


def read_copy(
    conn: Connection,
    stmt: Select[Any],
    kinds: Mapping[str, Kind],
    chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """The rows of ``stmt`` as DataFrames of exactly ``chunk_rows`` rows (the last one fewer).

    ``kinds`` gives the kind of every selected column, by label. An empty result yields one empty
    frame, as ``pandas.read_sql`` does.
    """
    names = [c.name for c in stmt.selected_columns]
    parse, convert = _options(names, kinds)
    query = copy_sql(conn, stmt)
    for setting in SETTINGS:
        conn.exec_driver_sql(setting)
    raw: Any = conn.connection.dbapi_connection
    yielded = False
    with raw.cursor() as cursor, cursor.copy(query) as copy:
        data = bytearray()
        rows = longest = 0
        while row := copy.read():
            data += row
            rows += 1
            longest = max(longest, len(row))
            if rows == chunk_rows:
                frame = _frame(data, longest, names, parse, convert)
                data = bytearray()
                rows = longest = 0
                yielded = True
                yield frame
        if rows:
            yielded = True
            yield _frame(data, longest, names, parse, convert)
    if not yielded:
        yield _empty(names, kinds)
