"""SQLite's fast read path: the plan's SELECT streamed as Arrow record batches by ADBC.

``pandas.read_sql`` on SQLite holds the GIL for every row: the ``sqlite3`` module builds a tuple
per row and pandas builds columns from them, so redaction and formatting wait for the reader. The
ADBC SQLite driver steps the same statement in C and fills Arrow columns. It runs in a child
process (``sqlitechild``): it links its own copy of SQLite, and two copies in one process break
each other's POSIX locks (a test of four exports at once ended with "database disk image is
malformed"). The child streams Arrow IPC through a pipe, batch by batch as the export takes them;
the export's process reads the stream in C and keeps its own core for redaction and writing.

**Column types.** SQLite has no column types, only values, so the driver takes each column's
Arrow type from the values of the first batch. A column that is NULL in the whole first batch
would be typed by guess, and the first real value later fails the read ("Type mismatch … expected
INT64 but got STRING/BINARY"). CAST does not help: NULL stays NULL. So the statement gets a first
row of its own, a *witness* holding one value of each column's kind (``0`` for int and bool,
``0.5`` for float, ``''`` for text and timestamps, which SQLite stores as text)::

    SELECT NULL, 0, '', 0.5, … UNION ALL SELECT key, <the plan's columns> FROM … ORDER BY 1

The plan's order key (an integer primary key, never NULL) is the first column and the compound is
ordered by it: NULL sorts first, so the witness is the first row by SQL's own rules, and SQLite
merges the two ordered arms without a sort. The reader drops the witness and the key. A float
column then reads integers as floats, as ``read_sql`` does; a value of another kind than its
column's (text in an integer column) still fails, with ``NativeReadError``, and the export runs
again on the ``read_sql`` path.

**What stays on ``read_sql``.** The driver cannot call Python functions: a statement using the
``regexp`` function that nano-export registers on its SQLite connections (a ``~`` filter, the
free-text guard) is read by pandas, as is a statement not ordered by one integer primary key, and
an in-memory database. Values are bound as parameters, as on the ``read_sql`` path.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Column, ColumnElement, Connection, Select

from nano_export.datasets import Kind
from nano_export.db import compile_bound, sqlite_file
from nano_export.errors import ExportFailed
from nano_export.sqlitechild import TYPE_MISMATCH
from nano_export.typedcells import rechunk

#: Functions that exist only as Python callbacks on nano-export's own SQLite connections.
PYTHON_FUNCTIONS = ("regexp",)
#: The witness row's value for each column kind (see the module's docstring).
WITNESS: dict[str, str] = {"int": "0", "bool": "0", "float": "0.5", "text": "''", "datetime": "''"}
#: The child process that runs the driver (see its docstring for why a process of its own).
CHILD = Path(__file__).with_name("sqlitechild.py")
#: Rows per batch the driver builds. Its builders grow by doubling, so a batch costs up to twice
#: its size while it is built: batches smaller than a chunk, joined into the export's chunks, keep
#: the peak lower than whole chunks would. 5,000 rather than 2,000: 300K rows at standard export
#: about 15% faster with the same peak (``bench/export_bench.py``).
BATCH_ROWS = 5_000


class NativeReadError(ExportFailed):
    """The native reader met a value it cannot read (a value of another kind than its column's):
    the ``read_sql`` path can."""


@dataclass(frozen=True)
class NativeQuery:
    """A statement ready for the ADBC driver: SQL with ``?`` placeholders, and their values."""

    path: Path
    sql: str
    params: tuple[Any, ...]
    names: tuple[str, ...]


def order_key(stmt: Select[Any]) -> ColumnElement[Any] | None:
    """The column ``stmt`` is ordered by, when it is one integer primary key; None otherwise."""
    order = list(stmt._order_by_clauses)
    if len(order) != 1 or not isinstance(order[0], Column):
        return None
    column = order[0]
    return column if column.primary_key and column.type.python_type is int else None


def database_file(conn: Connection) -> Path | None:
    """The SQLite file behind ``conn``; None for memory or a ``file:`` URI."""
    if conn.dialect.name != "sqlite":
        return None
    path = sqlite_file(conn.engine.url)
    return None if path is None else path.resolve()


def native_query(
    conn: Connection, stmt: Select[Any], kinds: Mapping[str, Kind]
) -> NativeQuery | None:
    """``stmt`` as the ADBC SQLite driver reads it (witness row first), or None when it cannot."""
    path = database_file(conn)
    key = order_key(stmt)
    if path is None or key is None:
        return None
    names = tuple(c.name for c in stmt.selected_columns)
    keyed = stmt.with_only_columns(key, *stmt.selected_columns).order_by(None)
    compiled, values = compile_bound(conn, keyed)
    body = str(compiled)
    if any(name in body.lower() for name in PYTHON_FUNCTIONS):
        return None
    witness = ", ".join(["NULL", *(WITNESS[kinds[name]] for name in names)])
    sql = f"SELECT {witness} UNION ALL {body} ORDER BY 1"
    try:
        params = tuple(_adapted(values[name]) for name in compiled.positiontup or ())
    except sqlite3.ProgrammingError:  # a value the sqlite3 module itself cannot bind
        return None
    return NativeQuery(path=path, sql=sql, params=params, names=names)


def _adapted(value: Any) -> Any:
    """``value`` as the ``sqlite3`` module binds it on the ``read_sql`` path: its own types as
    they are, anything else through its registered adapters (a datetime becomes ISO text)."""
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    return sqlite3.adapt(value, sqlite3.PrepareProtocol)


def _json_param(value: Any) -> Any:
    return {"hex": value.hex()} if isinstance(value, bytes) else value


def read_batches(query: NativeQuery, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` as record batches of at most ``batch_rows`` rows, without the
    witness row and the key column (empty batches are skipped).

    The driver runs in a child process (``sqlitechild``: two copies of SQLite in one process
    corrupt databases) that streams Arrow IPC through a pipe; Arrow reads the stream in C. Closing
    the generator early stops the child. A value the driver cannot read raises NativeReadError;
    any other failure ExportFailed with the driver's words.
    """
    request = {
        "path": str(query.path),
        "sql": query.sql,
        "params": [_json_param(v) for v in query.params],
        "batch_rows": batch_rows,
        "names": list(query.names),
    }
    with subprocess.Popen(
        [sys.executable, "-I", str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        finished = broken = False
        try:
            child.stdin.write(json.dumps(request).encode())
            child.stdin.close()
            try:
                for batch in pa.ipc.open_stream(child.stdout):
                    if batch.num_rows:
                        yield batch
            except (pa.ArrowInvalid, OSError):
                broken = True  # the child stopped writing: its status says why
            finished = True
        finally:
            if not finished:  # closed early or failed: the child has nothing more to do
                child.kill()
            status = child.wait()
            message = child.stderr.read().decode(errors="replace").strip().splitlines()
    if finished and (status != 0 or broken):
        words = message[-1] if message else f"the reader ended with status {status}"
        error = NativeReadError if status == TYPE_MISMATCH else ExportFailed
        raise error(f"SQLite: {words}")


def read_tables(query: NativeQuery, chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of ``query`` as Arrow tables of ``chunk_rows`` rows (the last may have fewer),
    each column typed by the witness row (see the module's docstring).

    The chunks are cut where ``read_sql`` cuts them: the witness row takes a place in the driver's
    first batch, and formats that keep chunks apart (Parquet's row groups) must not notice. An
    empty result yields one empty table with the columns, as ``pandas.read_sql`` does.
    """
    yielded = False
    for table in rechunk(read_batches(query, min(chunk_rows, BATCH_ROWS)), chunk_rows):
        yielded = True
        yield table
    if not yielded:
        yield pa.table({name: pa.nulls(0) for name in query.names})
