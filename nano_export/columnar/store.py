"""Explore's in-memory columns: loading them, and knowing they are current (see the package)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from nano_export.db import read_connection
from nano_export.errors import QueryTimeout
from nano_export.overview import LATENCY_EDGES
from nano_export.schema import data_versions
from nano_export.schema import execution_metrics as m
from nano_export.schema import executions as e
from nano_export.settings import get_settings

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("provider", "model", "test_id", "test_name")
_LOAD_SQL = (
    "SELECT e.id, e.provider, e.model, e.test_id, e.test_name, e.started_at, e.success, "
    "e.execution_time_s, m.execution_id AS metrics_id, m.cost_usd "
    "FROM executions e LEFT JOIN execution_metrics m ON m.execution_id = e.id "
    "WHERE e.id > {after}"
)
#: Up to this many rows, SQLite is read in this process with the standard library (no process to
#: start: an import's few rows take milliseconds); more go through connectorx in a child process.
IN_PROCESS_ROWS = 50_000
_NAMES = (
    "id", "provider", "model", "test_id", "test_name", "started_at", "success",
    "execution_time_s", "metrics_id", "cost_usd",
)  # fmt: skip
#: The load's SELECT for the standard library: started_at as microseconds since 1970 (UTC).
_SQLITE_SQL = (
    "SELECT e.id, e.provider, e.model, e.test_id, e.test_name, "
    "CAST(strftime('%s', e.started_at) AS INTEGER) * 1000000"
    " + CAST(substr(e.started_at || '.000000', 21, 6) AS INTEGER), "
    "e.success != 0, e.execution_time_s, m.execution_id, m.cost_usd "
    "FROM executions e LEFT JOIN execution_metrics m ON m.execution_id = e.id WHERE e.id > ?"
)
IntArray = npt.NDArray[np.int64]
_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Key:
    """The ``data_versions`` tokens the columns were read under."""

    appended: str
    changed: str


@dataclass(frozen=True)
class Columns:
    """The columns of every execution, ascending by id; text columns as codes into ``values``."""

    key: Key
    ids: IntArray
    codes: dict[str, npt.NDArray[np.int32]]  # -1 for NULL
    values: dict[str, tuple[str, ...]]
    started_us: IntArray  # microseconds since 1970-01-01 UTC
    success: npt.NDArray[np.bool_]
    latency: npt.NDArray[np.float64]  # NaN for NULL
    cost: npt.NDArray[np.float64]  # NaN for NULL or no metrics row
    metrics_rows: int
    _pairs: list[tuple[str, str]] = field(default_factory=list, compare=False, repr=False)
    #: Per-row values derived once, when loaded (``derive``): day, log_bucket and pair.
    derived: dict[str, npt.NDArray[Any]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rows(self) -> int:
        """How many executions the columns hold."""
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes the arrays take."""
        arrays = [self.ids, self.started_us, self.success, self.latency, self.cost]
        return sum(a.nbytes for a in [*arrays, *self.codes.values(), *self.derived.values()])


_cache: dict[str, Columns] = {}
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_warming: set[str] = set()


def _supported(engine: Engine) -> bool:
    if engine.dialect.name == "postgresql":
        return engine.dialect.driver == "psycopg"
    db = engine.url.database or ""
    return engine.dialect.name == "sqlite" and db not in ("", ":memory:") and "file:" not in db


def _cache_key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _lock(url: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault(url, threading.Lock())


def forget() -> None:
    """Drop every process's columns (tests and the bench: the next use loads from scratch)."""
    with _guard:
        _cache.clear()


def columns_for(engine: Engine) -> Columns | None:
    """The current columns of ``engine``'s executions; None where they are not kept.

    Not kept: an in-memory SQLite database, a driver other than psycopg, or a database whose
    ``data_versions`` row is missing (emptied by a TRUNCATE, until the next write).
    """
    if not _supported(engine):
        return None
    url = _cache_key(engine)
    with _lock(url):
        key = _read_key(engine)
        have = _cache.get(url)
        if key is None:
            _cache.pop(url, None)
            return None
        if have is not None and have.key == key:
            return have
        began = time.perf_counter()
        appendable = have is not None and have.key.changed == key.changed
        cols = _append(engine, have, key) if have is not None and appendable else None
        how = "appended" if cols is not None else "loaded"
        if cols is None:
            cols = _build(key, [_read(engine, after=-1)])
            _release_memory()
        _cache[url] = cols
        log.info(
            "explore columns %s",
            how,
            extra={
                "rows": cols.rows,
                "megabytes": round(cols.nbytes / 1e6, 1),
                "seconds": round(time.perf_counter() - began, 3),
            },
        )
        return cols


def warm(engine: Engine) -> None:
    """Load the columns in a background thread, once per database and process."""
    if not _supported(engine):
        return
    url = _cache_key(engine)
    with _guard:
        if url in _warming:
            return
        _warming.add(url)

    def run() -> None:
        try:
            columns_for(engine)
        except Exception:  # the first page view reports it (or falls back to SQL)
            log.exception("explore columns not loaded in the background")

    threading.Thread(target=run, name="explore-columns", daemon=True).start()


def data_version(engine: Engine) -> str | None:
    """The current data version of the executions (changes with every write), or None."""
    key = _read_key(engine)
    return None if key is None else f"{key.appended}:{key.changed}"


def _release_memory() -> None:
    """Hand the memory of a full load's Arrow table back to the system.

    The allocators keep freed memory for reuse: after a 1M-row load the process held ~120 MB more
    than the 49 MB of columns; with this, ~20 MB more.
    """
    pa.default_memory_pool().release_unused()
    # glibc keeps what connectorx and ADBC freed; elsewhere there is nothing to do.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _read_key(engine: Engine) -> Key | None:
    dv = data_versions
    stmt = select(dv.c.appended, dv.c.changed).where(dv.c.name == "executions")
    try:  # a primary-key read of a one-row table: no time limit needed (nor its round trip)
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    except DBAPIError:  # a database without migration 0009: SQL only
        log.warning("no data_versions table: explore reads in SQL")
        return None
    return None if row is None else Key(str(row[0]), str(row[1]))


def _read(engine: Engine, *, after: int) -> pa.Table:
    """The executions with an id above ``after``, as an Arrow table."""
    sql = _LOAD_SQL.format(after=int(after))
    if engine.dialect.name != "sqlite":
        return _read_postgres(engine, sql)
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        count = raw.execute("SELECT count(*) FROM executions WHERE id > ?", (after,)).fetchone()
        if int(count[0]) <= IN_PROCESS_ROWS:
            rows = raw.execute(_SQLITE_SQL, (after,)).fetchall()
            columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[]] * len(_NAMES)
            types = [pa.int64(), *[pa.string()] * 4, pa.int64(), pa.int8(), pa.float64()]
            types += [pa.int64(), pa.float64()]
            arrays = [pa.array(c, type=t) for c, t in zip(columns, types, strict=True)]
            return pa.Table.from_arrays(arrays, names=list(_NAMES))
    return _read_sqlite_child(Path(str(engine.url.database)).resolve(), sql)


def _read_sqlite_child(path: Path, sql: str) -> pa.Table:
    """``sql`` read by connectorx in a child process (see ``sqlite_reader.py`` for why)."""
    script = Path(__file__).with_name("sqlite_reader.py")
    done = subprocess.run(
        [sys.executable, "-P", str(script), str(path), sql], capture_output=True, check=False
    )
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise RuntimeError(f"reading the explore columns failed: {' '.join(reason)}")
    table: pa.Table = pa.ipc.open_stream(pa.py_buffer(done.stdout)).read_all()
    return table


def _read_postgres(engine: Engine, sql: str) -> pa.Table:
    import adbc_driver_postgresql.dbapi as adbc

    from nano_export.pgcopy import libpq_uri

    seconds = get_settings().query_timeout_s
    with adbc.connect(libpq_uri(engine.url)) as conn, conn.cursor() as cur:
        # The interactive time limit of ``read_connection``, for this connection's transaction.
        cur.execute(f"SET LOCAL statement_timeout = {int(seconds) * 1000}")
        try:
            cur.execute(sql)
            table: pa.Table = cur.fetch_arrow_table()
        except adbc.Error as exc:
            if getattr(exc, "sqlstate", None) == "57014":
                raise QueryTimeout(seconds) from None
            raise
        return table


def _floats(column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    filled = pc.fill_null(column.cast(pa.float64()), float("nan"))
    return np.asarray(filled.to_numpy(), dtype=np.float64)


def _micros(column: pa.ChunkedArray) -> IntArray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz=column.type.tz))
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _build(key: Key, parts: list[pa.Table], base: Columns | None = None) -> Columns:
    """Columns from Arrow tables (after ``base``'s rows, when given), ascending by id."""
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    ids = np.asarray(table["id"].cast(pa.int64()).to_numpy(), dtype=np.int64)
    codes: dict[str, npt.NDArray[np.int32]] = {}
    values: dict[str, tuple[str, ...]] = {}
    for name in TEXT_COLUMNS:
        known = list(base.values[name]) if base is not None else []
        index = {v: i for i, v in enumerate(known)}
        encoded = pc.dictionary_encode(table[name].cast(pa.string())).combine_chunks()
        mapping = np.empty(len(encoded.dictionary) + 1, dtype=np.int32)
        for i, value in enumerate(encoded.dictionary.to_pylist()):
            mapping[i] = index.setdefault(value, len(index))
        mapping[-1] = -1  # NULL
        raw = pc.fill_null(encoded.indices, -1).to_numpy()
        codes[name] = mapping[np.asarray(raw, dtype=np.int64)]
        values[name] = tuple(index)
    new: dict[str, Any] = {
        "ids": ids,
        "started_us": _micros(table["started_at"]),
        "success": np.asarray(table["success"].to_numpy(zero_copy_only=False), dtype=np.bool_),
        "latency": _floats(table["execution_time_s"]),
        "cost": _floats(table["cost_usd"]),
    }
    metrics_rows = len(table) - table["metrics_id"].null_count
    if base is not None:
        new = {k: np.concatenate([getattr(base, k), v]) for k, v in new.items()}
        codes = {k: np.concatenate([base.codes[k], v]) for k, v in codes.items()}
        metrics_rows += base.metrics_rows
    order = None if np.all(new["ids"][1:] > new["ids"][:-1]) else np.argsort(new["ids"])
    if order is not None:
        new = {k: v[order] for k, v in new.items()}
        codes = {k: v[order] for k, v in codes.items()}
    cols = Columns(key=key, codes=codes, values=values, metrics_rows=metrics_rows, **new)
    cols.derived.update(derive(cols))
    return cols


def derive(cols: Columns) -> dict[str, npt.NDArray[Any]]:
    """Per-row values every overview needs, computed once: ``day`` (UTC days since 1970),
    ``log_bucket`` (the ``LATENCY_EDGES`` bucket; ``len(LATENCY_EDGES) + 1`` without a latency)
    and ``pair`` (provider code × number of models + model code)."""
    edges = np.asarray(LATENCY_EDGES, dtype=np.float64)
    inside = np.searchsorted(edges, cols.latency, side="right")
    n_model = len(cols.values["model"])
    return {
        "day": (cols.started_us // _DAY_US).astype(np.int32),
        "log_bucket": np.where(np.isnan(cols.latency), len(edges) + 1, inside).astype(np.int8),
        "pair": (cols.codes["provider"].astype(np.int64) * n_model + cols.codes["model"]).astype(
            np.int32
        ),
    }


def _append(engine: Engine, have: Columns, key: Key) -> Columns | None:
    """``have`` plus the rows added since, or None when the row counts show more changed."""
    after = int(have.ids[-1]) if have.rows else -1
    cols = _build(key, [_read(engine, after=after)], base=have)
    count = select(
        select(func.count()).select_from(e).scalar_subquery(),
        select(func.count()).select_from(m).scalar_subquery(),
    )
    with read_connection(engine) as conn:
        n_exec, n_metrics = conn.execute(count).one()
    if (int(n_exec), int(n_metrics)) != (cols.rows, cols.metrics_rows):
        log.info("explore columns: rows changed besides appends, loading all")
        return None
    return cols
