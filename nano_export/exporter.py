"""The export engine: read a chunk, transform it, write it, record progress.

One plan (dataset, columns, renames, filters, privacy) compiles to one bound SELECT. The engine
streams it in chunks (``COPY … TO STDOUT`` parsed by Arrow on PostgreSQL, ``pandas.read_sql`` on
SQLite; see ``read_chunks``), passes every chunk through the one redaction path
(``privacy.apply_policy``), and writes it with ``csvfmt.CsvSink`` to a temporary file that is
renamed only when complete. Any failure removes the temporary file; no error text is ever written
into a CSV.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pyarrow as pa
from sqlalchemy import Connection, Engine, Select, func

from nano_export import filters, privacy, sqlitearrow
from nano_export.csvcells import format_cells
from nano_export.csvfmt import encode_rows, header_line
from nano_export.datasets import FREE_TEXT, Dataset, Kind, get_dataset
from nano_export.db import compile_bound
from nano_export.errors import BadInput, ExportCancelled
from nano_export.formats import open_sink
from nano_export.models import ExportFormat, ExportRequest, FilterSpec, Privacy
from nano_export.sinkfile import XLSX_SHEET_ROWS, SinkResult
from nano_export.sqlitearrow import NativeReadError
from nano_export.typedcells import Chunk

if TYPE_CHECKING:  # pandas is loaded by the read_sql path only (see read_chunks)
    import pandas as pd

log = logging.getLogger(__name__)


def use_system_allocator() -> None:
    """Make Arrow allocate with the C library's malloc, unless ``ARROW_DEFAULT_MEMORY_POOL`` says
    otherwise.

    Arrow's default allocator (mimalloc) keeps the memory of finished chunks in the process: a
    1M-row export peaked about 60 MB higher with it and ran no faster (``bench/export_bench.py``).
    The pool is process-wide; this runs once, when the engine is imported.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


use_system_allocator()

T = TypeVar("T")
ProgressFn = Callable[[int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class ExportPlan:
    """A validated export: which rows, which columns under which names, at which privacy level."""

    dataset: Dataset
    spec: FilterSpec
    columns: tuple[str, ...]
    rename: dict[str, str]
    privacy: Privacy
    format: ExportFormat
    excel: bool

    @property
    def gzip(self) -> bool:
        """Whether the file is gzip-compressed CSV."""
        return self.format == "csv.gz"

    @property
    def output_names(self) -> list[str]:
        """Header names in output order, after renames."""
        return [self.rename.get(c, c) for c in self.columns]

    @property
    def output_kinds(self) -> dict[str, Kind]:
        """Output name → column kind, for the CSV formatter."""
        kinds = self.dataset.kinds()
        return {self.rename.get(c, c): kinds[c] for c in self.columns}

    def statement(self, *, raw: bool = False) -> Select[Any]:
        """The SELECT of this plan's rows and columns, filters bound as parameters.

        ``raw`` reads driver values without per-row conversion (see ``Dataset.select``).
        """
        stmt = self.dataset.select(self.columns, raw=raw)
        return filters.apply_filters(stmt, self.spec, self.dataset)

    def count_statement(self) -> Select[Any]:
        """SELECT COUNT(*) over the same rows (without a join that no filter needs)."""
        return filters.lean_select(self.dataset, self.spec, func.count())


def plan_export(request: ExportRequest) -> ExportPlan:
    """Check a request against its dataset and return the plan; BadInput names what is wrong."""
    dataset = get_dataset(request.dataset)
    known = dataset.column_names
    if request.columns:
        unknown = [c for c in request.columns if c not in known]
        if unknown:
            raise BadInput(
                f"unknown column(s) for {dataset.name}: {', '.join(unknown)}; "
                f"available: {', '.join(known)}"
            )
        dupes = sorted({c for c in request.columns if request.columns.count(c) > 1})
        if dupes:
            raise BadInput(f"column(s) listed twice: {', '.join(dupes)}")
        columns = tuple(request.columns)
        if request.privacy == "public":
            refused = [c for c in columns if c in FREE_TEXT]
            if refused:
                raise BadInput(
                    f"free-text column(s) {', '.join(refused)} are not exported at privacy "
                    "level 'public'; choose 'standard' or leave them out"
                )
    else:
        columns = tuple(privacy.columns_for_level(known, request.privacy))
    for old, new in request.rename.items():
        if old not in columns:
            raise BadInput(f"cannot rename {old!r}: it is not one of the exported columns")
        if not new or not new.strip():
            raise BadInput(f"cannot rename {old!r} to an empty name")
    names = [request.rename.get(c, c) for c in columns]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise BadInput(f"renames give two columns the same name: {', '.join(clashes)}")
    if request.excel and request.format not in ("csv", "csv.gz"):
        raise BadInput(
            f"excel (a byte-order mark for CSV) does not apply to format {request.format!r}; "
            "for a workbook choose format 'xlsx'"
        )
    filters.validate(request.filters, dataset, request.privacy)
    return ExportPlan(
        dataset=dataset,
        spec=request.filters,
        columns=columns,
        rename=dict(request.rename),
        privacy=request.privacy,
        format=request.format,
        excel=request.excel,
    )


def manifest(plan: ExportPlan, *, at: datetime | None = None) -> dict[str, Any]:
    """What a file says about itself (Parquet metadata): dataset, filters, columns, privacy level,
    nano-export version and the time of the export (UTC)."""
    from nano_export import __version__

    return {
        "dataset": plan.dataset.name,
        "filters": plan.spec.model_dump(mode="json", exclude_defaults=True),
        "columns": plan.output_names,
        "privacy": plan.privacy,
        "format": plan.format,
        "nano_export_version": __version__,
        "exported_at": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
    }


def count_rows(conn: Connection, plan: ExportPlan) -> int:
    """How many rows the plan selects."""
    return int(conn.execute(plan.count_statement()).scalar_one())


#: Read with the native Arrow readers where they apply (ADBC's drivers: binary COPY on PostgreSQL,
#: the SQLite driver on SQLite); False keeps ``pandas.read_sql`` everywhere (tests compare the two
#: byte for byte).
NATIVE_READ = True


#: ``read_sql``'s columns: nullable integers keep every digit (an int column with a NULL would
#: otherwise become float64 and round above 2**53), as the native readers' Arrow columns do.
_EXACT: Any = "numpy_nullable"


def read_chunks(
    conn: Connection, plan: ExportPlan, chunk_rows: int, *, native: bool | None = None
) -> Generator[Chunk, None, None]:
    """The plan's rows in chunks of at most ``chunk_rows`` rows, streamed from the database:
    Arrow tables from the native readers, DataFrames from ``read_sql``. Every later step (the
    privacy policy, the sinks) takes either and writes the same bytes.

    Native readers build Arrow columns in C or Rust, outside the GIL, so reading overlaps with
    redaction and formatting in the export's other thread:
    - SQLite: ADBC's SQLite driver (``sqlitearrow``), unless the statement needs a Python
      function (a ``~`` filter).
    - PostgreSQL through psycopg: ADBC's binary ``COPY`` (``pgcopy``).
    Otherwise ``pandas.read_sql``: on SQLite with the driver connection underneath (the cursor
    is lazy; skipping SQLAlchemy's per-row wrapping reads about a third faster), elsewhere with
    ``stream_results`` (a server-side cursor fetching ``chunk_rows`` at a time). Both paths write
    the same bytes (tests); which one ran is logged. ``native=False`` (default: ``NATIVE_READ``)
    keeps ``read_sql``.
    """
    native_read = NATIVE_READ if native is None else native
    stmt = plan.statement(raw=True)
    # pandas is imported by the read_sql path only: a process whose exports are all read
    # natively never loads it (about 40 MB less at its peak).
    if conn.dialect.name == "sqlite":
        query = sqlitearrow.native_query(conn, stmt, plan.dataset.kinds()) if native_read else None
        if query is not None:
            _log_path("adbc-sqlite", plan)
            yield from sqlitearrow.read_tables(query, chunk_rows)
            return
        _log_path("read_sql", plan)
        import pandas as pd

        sql, params = _driver_statement(conn, stmt)
        driver: Any = conn.connection.dbapi_connection  # a sqlite3.Connection, which pandas reads
        yield from pd.read_sql(
            sql, driver, params=params, chunksize=chunk_rows, dtype_backend=_EXACT
        )
        return
    from nano_export import pgcopy  # psycopg and ADBC: loaded by PostgreSQL exports only

    if native_read and pgcopy.usable(conn):
        _log_path("adbc", plan)
        yield from pgcopy.read_copy(conn, stmt, plan.dataset.kinds(), chunk_rows)
        return
    _log_path("read_sql", plan)
    import pandas as pd

    streaming = conn.execution_options(stream_results=True, yield_per=chunk_rows)
    yield from pd.read_sql(stmt, streaming, chunksize=chunk_rows, dtype_backend=_EXACT)


def _log_path(reader: str, plan: ExportPlan) -> None:
    log.info("export reader", extra={"reader": reader, "dataset": plan.dataset.name})


def _driver_statement(conn: Connection, stmt: Select[Any]) -> tuple[str, list[Any]]:
    """SQL text with positional placeholders and its parameters, converted as SQLAlchemy would."""
    compiled, values = compile_bound(conn, stmt)
    return str(compiled), [values[name] for name in compiled.positiontup or ()]


_END = object()

#: Chunks the reader may hold ahead of the one the caller is working on (so READ_AHEAD + 1 chunks
#: are in memory at most). Two keep the reader busy while the caller works through a chunk that
#: took longer than the last: with smaller chunks (``settings.chunk_rows``) the export runs about
#: as fast as one chunk ahead of larger ones.
READ_AHEAD = 2


#: A chunk as read, and its free-text cells' screen (``privacy.screen_flags``) when computed.
Screened = tuple[Chunk, pa.Array | None]


def read_ahead(
    engine: Engine, plan: ExportPlan, chunk_rows: int, *, native: bool | None = None
) -> Generator[Screened, None, None]:
    """``read_chunks`` on its own connection in a reader thread, ahead of the caller,
    each chunk with its privacy screen (pass both to :func:`transform`).

    Reading and screening overlap with redaction and formatting: the native readers hold no GIL,
    and the screen is RE2, outside the GIL too. The reader stays at most ``READ_AHEAD`` chunks
    ahead of the one the caller holds, so at most ``READ_AHEAD + 1`` chunks are in memory: memory
    is bounded by the chunk size.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD)
    taken = threading.Semaphore(READ_AHEAD)  # chunks the reader may read before the caller takes
    stop = threading.Event()

    def wait_taken() -> bool:
        while not stop.is_set():
            if taken.acquire(timeout=0.1):
                return True
        return False

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with engine.connect() as conn:
                try:
                    chunks = read_chunks(conn, plan, chunk_rows, native=native)
                    while True:
                        if not wait_taken():
                            return
                        chunk = next(chunks, None)
                        if chunk is None:
                            break
                        flags = privacy.screen_flags(chunk, level=plan.privacy)
                        if not offer((chunk, flags)):
                            return
                except BaseException as exc:
                    # A reader left suspended in a frame of this traceback would keep its COPY
                    # (and psycopg's connection lock) until the traceback dies: closing the
                    # connection would then wait forever. Clearing those frames ends it now.
                    traceback.clear_frames(exc.__traceback__)
                    raise
                finally:
                    chunks.close()
            offer(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(exc)

    # The reader's log lines carry the export's context (its id, user, interface) like the rest.
    context = contextvars.copy_context()
    reader = threading.Thread(
        target=context.run, args=(produce,), name="export-reader", daemon=True
    )
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            taken.release()
            yield item
    finally:
        stop.set()
        reader.join(timeout=60)


@overload
def transform(
    chunk: pd.DataFrame,
    plan: ExportPlan,
    *,
    secret: str,
    flags: pa.Array | None = None,
    memo: privacy.Redactions | None = None,
) -> pd.DataFrame: ...


@overload
def transform(
    chunk: pa.Table,
    plan: ExportPlan,
    *,
    secret: str,
    flags: pa.Array | None = None,
    memo: privacy.Redactions | None = None,
) -> pa.Table: ...


def transform(
    chunk: Chunk,
    plan: ExportPlan,
    *,
    secret: str,
    flags: pa.Array | None = None,
    memo: privacy.Redactions | None = None,
) -> Chunk:
    """Apply the privacy policy, then the column order and renames of the plan. ``flags``: the
    chunk's screen, computed ahead (``read_ahead``); ``memo``: the export's redactions so far."""
    safe = privacy.apply_policy(chunk, level=plan.privacy, secret=secret, flags=flags, memo=memo)
    if isinstance(safe, pa.Table):
        table = safe.select(list(plan.columns))
        return table.rename_columns(plan.output_names) if plan.rename else table
    out = safe[list(plan.columns)]
    return out.rename(columns=plan.rename) if plan.rename else out


def run_export(
    engine: Engine,
    plan: ExportPlan,
    *,
    out_path: Path,
    secret: str,
    chunk_rows: int,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    sheet_rows: int = XLSX_SHEET_ROWS,
) -> SinkResult:
    """Write the plan's rows to ``out_path``; the file appears there only when complete.

    ``on_progress`` receives the rows written so far after each chunk; ``should_cancel`` is asked
    after each chunk and stops the export with ExportCancelled. On any error the temporary file is
    removed and the exception propagates. ``sheet_rows`` is the data rows per xlsx worksheet.
    """
    started = time.perf_counter()
    attempt = functools.partial(
        _write, engine, plan, out_path, secret, chunk_rows, on_progress, should_cancel, sheet_rows
    )
    result = or_read_sql(attempt, plan)
    log.info(
        "export written",
        extra={
            "dataset": plan.dataset.name,
            "format": plan.format,
            "rows": result.rows,
            "bytes": result.bytes,
            "truncated_cells": result.truncated_cells,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return result


def or_read_sql(attempt: Callable[..., T], plan: ExportPlan) -> T:
    """``attempt()`` with the native reader; ``attempt(native=False)`` when it meets a value of
    another kind than its column's, which only ``read_sql`` reads. The caller's attempt starts
    from nothing each time (a new temporary file, a new list): nothing of the first is kept."""
    try:
        return attempt()
    except NativeReadError as exc:
        log.warning(
            "native reader failed; export restarted on read_sql",
            extra={"dataset": plan.dataset.name, "reason": str(exc)},
        )
        return attempt(native=False)


def _write(
    engine: Engine,
    plan: ExportPlan,
    out_path: Path,
    secret: str,
    chunk_rows: int,
    on_progress: ProgressFn | None,
    should_cancel: CancelFn | None,
    sheet_rows: int,
    *,
    native: bool | None = None,
) -> SinkResult:
    """One attempt of ``run_export``: its temporary file is removed on any error."""
    sink = open_sink(
        plan.format,
        out_path,
        columns=plan.output_names,
        kinds=plan.output_kinds,
        excel=plan.excel,
        manifest=manifest(plan),
        sheet_rows=sheet_rows,
    )
    try:
        chunks = read_ahead(engine, plan, chunk_rows, native=native)
        memo = privacy.Redactions()
        try:
            for chunk, flags in chunks:
                sink.write(transform(chunk, plan, secret=secret, flags=flags, memo=memo))
                if on_progress is not None:
                    on_progress(sink.rows)
                if should_cancel is not None and should_cancel():
                    raise ExportCancelled("export cancelled")
        finally:
            chunks.close()
        return sink.commit()
    except BaseException:
        sink.abort()
        raise


def preview(
    engine: Engine,
    plan: ExportPlan,
    *,
    secret: str,
    limit: int = 20,
) -> pd.DataFrame:
    """The first ``limit`` rows of the plan exactly as the file would carry them (before CSV)."""
    with engine.connect() as conn:
        return preview_on(conn, plan, secret=secret, limit=limit)


def preview_on(conn: Connection, plan: ExportPlan, *, secret: str, limit: int = 20) -> pd.DataFrame:
    """``preview`` on a connection of the caller's (one with a time limit, for example)."""
    import pandas as pd

    frame = pd.read_sql(plan.statement().limit(limit), conn)
    return transform(frame, plan, secret=secret)


def estimate_bytes(engine: Engine, plan: ExportPlan, *, secret: str, rows: int) -> int:
    """Approximate file size: the exact CSV size of a sample of up to 500 rows, scaled to ``rows``.

    Uncompressed; a gzip file is several times smaller.
    """
    if rows == 0:
        return 0
    sample = preview(engine, plan, secret=secret, limit=min(rows, 500))
    if sample.empty:
        return 0
    body = len(encode_rows(format_cells(sample, plan.output_kinds)))
    return int(len(header_line(plan.output_names)) + body / len(sample) * rows)
