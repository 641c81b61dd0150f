"""PostgreSQL's fast read path: the plan's SELECT streamed as Arrow record batches by ADBC.

Building a Python object per cell (psycopg rows, SQLAlchemy rows, then pandas columns from those
objects) is where most of a PostgreSQL export's time went. Here the ADBC PostgreSQL driver runs
``COPY (<the plan's SELECT>) TO STDOUT (FORMAT binary)`` and decodes the binary rows into Arrow
columns in C, outside the GIL: reading overlaps with redaction and CSV formatting in the export's
other threads. (Reading CSV from psycopg's ``cursor.copy`` and parsing it with Arrow, the previous
path, spent a Python call per row; ``bench/export_bench.py`` has the figures.)

- The statement is the plan's own compiled SELECT. COPY takes no bound parameters, so the filter
  values are rendered into the statement by psycopg's client-side literal adaptation
  (``ClientCursor.mogrify``, the same quoting psycopg's ``ClientCursor`` uses for every query) on
  the caller's connection; no value is ever formatted into SQL here.
- The binary format carries exact values: timestamps as UTC microseconds, floats as their IEEE
  bits, whatever the session's time zone, date style or float settings.
- ADBC uses its own libpq connection, made from the engine's URL, in autocommit mode (ADBC's
  default): one statement, no transaction left open. Closing the generator early cancels the
  query on the server and closes that connection.
- The driver is used through ADBC's own objects, not its DB-API module: that module imports
  ``pyarrow.dataset`` and pandas, about 50 MB of a process that needs neither.
- Batches arrive at about ``BATCH_BYTES`` each; they are regrouped into frames of ``chunk_rows``
  rows (slices: no copy of the text). A column whose type is not of its kind's family is cast to it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import adbc_driver_manager as adbc
import adbc_driver_postgresql
import pyarrow as pa
from psycopg import ClientCursor
from sqlalchemy import Connection, Select
from sqlalchemy.engine import URL

from nano_export.datasets import Kind
from nano_export.db import compile_bound
from nano_export.errors import ExportFailed
from nano_export.typedcells import arrow_schema, arrow_table, rechunk

log = logging.getLogger(__name__)

#: Bytes per record batch the driver aims at. Its default, 16 MB, held ~60 MB more at the peak of
#: a 1M-row export for no measurable speed; 4 MB held 10 MB more than 1 MB, also for none.
BATCH_BYTES = 1 << 20

_BATCH_OPTION = "adbc.postgresql.batch_size_hint_bytes"


def usable(conn: Connection) -> bool:
    """Whether ``conn`` can take the fast path: PostgreSQL through psycopg 3, talking UTF-8.

    psycopg renders the filter values into the statement, in the connection's encoding; ADBC
    reads text as UTF-8.
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return False
    raw: Any = conn.connection.dbapi_connection
    return bool(raw.info.encoding == "utf-8")


def libpq_uri(url: URL) -> str:
    """The engine's URL as a libpq connection URI (``postgresql://…``), password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def select_sql(conn: Connection, stmt: Select[Any]) -> str:
    """The SELECT as one SQL text, its parameters quoted by psycopg."""
    compiled, values = compile_bound(conn, stmt)
    raw: Any = conn.connection.dbapi_connection
    # psycopg's literal adaptation (the client-side binding of ClientCursor); always with a
    # mapping, so that the compiler's escaped %% become % even when there are no parameters.
    return str(ClientCursor(raw).mogrify(str(compiled), values))


def _server_message(exc: BaseException) -> str:
    """The server's own words from an ADBC error (``ERROR: …``, ``FATAL: …``), on one line,
    without the driver's prefixes."""
    text = str(exc).strip()
    starts = [i for i in (text.find(level) for level in ("ERROR:", "FATAL:", "PANIC:")) if i >= 0]
    if starts:
        text = text[min(starts) :]
    return text.splitlines()[0] if text else type(exc).__name__


def _statement(stack: contextlib.ExitStack, conn: Connection) -> adbc.AdbcStatement:
    """A statement on ADBC's own connection to the database of ``conn``, closed with ``stack``;
    ExportFailed names why the connection failed."""
    try:
        database = stack.enter_context(adbc_driver_postgresql.connect(libpq_uri(conn.engine.url)))
        connection = stack.enter_context(adbc.AdbcConnection(database))
    except (OSError, adbc.Error) as exc:
        raise ExportFailed(f"PostgreSQL: {_server_message(exc)}") from exc
    statement: adbc.AdbcStatement = stack.enter_context(adbc.AdbcStatement(connection))
    statement.set_options(**{_BATCH_OPTION: str(BATCH_BYTES)})
    return statement


def read_copy(
    conn: Connection,
    stmt: Select[Any],
    kinds: Mapping[str, Kind],
    chunk_rows: int,
) -> Iterator[pa.Table]:
    """The rows of ``stmt`` as Arrow tables of ``chunk_rows`` rows (the last may have fewer): cut
    where ``read_sql`` cuts them, for formats that keep chunks apart (Parquet's row groups).

    ``kinds`` gives the kind of every selected column, by label. An empty result yields one empty
    table, as ``pandas.read_sql`` does. A failed connection or a server error raises ExportFailed
    with the server's message.
    """
    schema = arrow_schema([c.name for c in stmt.selected_columns], kinds)
    query = select_sql(conn, stmt)
    yielded = finished = False
    with contextlib.ExitStack() as stack:
        statement = _statement(stack, conn)
        statement.set_sql_query(query)
        try:
            handle, _rows = statement.execute_query()
            reader = stack.enter_context(pa.RecordBatchReader.from_stream(handle))
            for table in rechunk(reader, chunk_rows):
                yielded = True
                yield arrow_table(table, schema)
            finished = True
        except (OSError, adbc.Error) as exc:
            raise ExportFailed(f"PostgreSQL: {_server_message(exc)}") from exc
        finally:
            if not finished:  # closed early or failed: stop the server's work now
                with contextlib.suppress(Exception):
                    statement.cancel()
    if not yielded:
        yield arrow_table(schema.empty_table(), schema)
