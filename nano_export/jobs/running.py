"""Running one export to its end, whichever runner calls it: the job body and its heartbeat."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select, update

from nano_export import logs
from nano_export.db import utcnow
from nano_export.errors import ExportCancelled, ExportFailed
from nano_export.exporter import ExportPlan, count_rows, run_export
from nano_export.jobs.files import discard_file, is_staged, store_file
from nano_export.jobs.records import audit_job, finish, load, reason_of, worker_name
from nano_export.models import ACTIVE_STATUSES, ExportRecord
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings
from nano_export.sinkfile import SinkResult

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 10.0
ProgressHook = Callable[[int, int | None], None]


class _Superseded(Exception):
    """The export's row was finished by another process (the reaper) while it still ran."""


class Heartbeat:
    """Touches the export row every few seconds while the export runs, even inside a slow query."""

    def __init__(self, engine: Engine, export_id: str, attempt: int, every: float) -> None:
        self._engine = engine
        self._id = export_id
        self._attempt = attempt
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{export_id[:8]}")
        self._thread.daemon = True

    def start(self) -> None:
        """Begin beating."""
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (safe to call twice, or before ``start``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        update(exports)
                        .where(
                            exports.c.id == self._id,
                            exports.c.attempt == self._attempt,
                            exports.c.status.in_(ACTIVE_STATUSES),
                        )
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # a missed beat is retried; the reaper tolerates a minute
                log.warning("heartbeat failed", extra={"export_id": self._id}, exc_info=True)


def _start(engine: Engine, rec: ExportRecord) -> int | None:
    """Mark the export running as a new attempt; None when it already ended (cancelled, failed)."""
    with engine.begin() as conn:
        attempt = conn.execute(
            update(exports)
            .where(exports.c.id == rec.id, exports.c.status.in_(ACTIVE_STATUSES))
            .values(
                status="running",
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                rows_done=0,
                worker=worker_name(),
                attempt=exports.c.attempt + 1,
            )
            .returning(exports.c.attempt)
        ).scalar_one_or_none()
        if attempt is not None:
            again = {"attempt": attempt} if attempt > 1 else None
            audit_job(conn, rec, "export.started", details=again)
    return attempt


def run_job(
    engine: Engine,
    settings: Settings,
    export_id: str,
    plan: ExportPlan,
    path: Path,
    on_progress: ProgressHook | None,
) -> None:
    """Run one export to its end, recording every outcome on its row and in the audit log.

    Each run is a new ``attempt`` of the export. Every write of this run is fenced by it, so a run
    that was given up on (its worker stopped answering and the job started again elsewhere) can
    neither finish the export nor touch the file the newer run publishes.
    """
    rec = load(engine, export_id)
    with logs.bind(export_id=export_id, user=rec.owner, interface=rec.interface):
        _run(engine, settings, rec, plan, path, on_progress)


def _run(
    engine: Engine,
    settings: Settings,
    rec: ExportRecord,
    plan: ExportPlan,
    path: Path,
    on_progress: ProgressHook | None,
) -> None:
    export_id = rec.id
    attempt = _start(engine, rec)
    if attempt is None:
        log.info("export already ended", extra={"export_id": export_id})
        return
    mine = and_(exports.c.id == export_id, exports.c.attempt == attempt)
    # The heartbeat runs from the start: a slow COUNT must not look like a dead worker.
    # Several beats fit in the timeout, so one missed beat never makes a live export look dead.
    every = min(HEARTBEAT_EVERY_S, settings.heartbeat_timeout_s / 4)
    heartbeat = Heartbeat(engine, export_id, attempt, every)
    try:
        heartbeat.start()
        with engine.connect() as conn:
            total = count_rows(conn, plan)
        with engine.begin() as conn:
            conn.execute(update(exports).where(mine).values(rows_total=total))
        if on_progress is not None:
            on_progress(0, total)

        last_check = 0.0
        cancelled = False

        started = time.monotonic()

        def progress(rows: int) -> None:
            limit = settings.export_time_limit_s
            if time.monotonic() - started > limit:
                raise ExportFailed(
                    f"the export ran longer than its limit of {limit} s "
                    "(NANO_EXPORT_EXPORT_TIME_LIMIT_S); narrow the filters or raise the limit"
                )
            with engine.begin() as conn:
                alive = conn.execute(
                    update(exports)
                    .where(mine, exports.c.status == "running")
                    .values(rows_done=rows, heartbeat_at=utcnow())
                ).rowcount
            if alive != 1:
                raise _Superseded("another process ended or took over this export")
            if on_progress is not None:
                on_progress(rows, total)

        def should_cancel() -> bool:
            nonlocal last_check, cancelled
            now = time.monotonic()
            if now - last_check < 0.5:
                return cancelled
            last_check = now
            with engine.connect() as conn:
                cancelled = bool(
                    conn.execute(
                        select(exports.c.cancel_requested).where(exports.c.id == export_id)
                    ).scalar_one()
                )
            return cancelled

        path.parent.mkdir(parents=True, exist_ok=True)
        result = run_export(
            engine,
            plan,
            out_path=path,
            secret=settings.resolved_secret(),
            chunk_rows=settings.chunk_rows,
            on_progress=progress,
            should_cancel=should_cancel,
            sheet_rows=settings.xlsx_sheet_rows,
        )
        # Publish only while this run still owns the export (the heartbeat goes on meanwhile): a
        # run given up on must not replace the object a newer run stored.
        with engine.connect() as conn:
            owned = conn.execute(select(exports.c.id).where(mine)).first() is not None
        if not owned:
            if is_staged(settings, export_id, rec.format, result.path):
                result.path.unlink(missing_ok=True)
            raise _Superseded("another run took over this export")
        stored = store_file(settings, export_id, rec.format, result.path)
        heartbeat.stop()
        with engine.begin() as conn:
            spec = _spec_with_result(conn, export_id, result)
            done = conn.execute(
                update(exports)
                .where(
                    mine,
                    exports.c.status == "running",
                    exports.c.cancel_requested.is_(False),
                )
                .values(
                    status="succeeded",
                    rows_done=result.rows,
                    rows_total=result.rows,
                    bytes=result.bytes,
                    sha256=result.sha256,
                    file_path=stored,
                    spec=spec,
                    finished_at=utcnow(),
                    heartbeat_at=utcnow(),
                )
            )
            if done.rowcount == 1:
                conn.execute(delete(export_slots).where(export_slots.c.export_id == export_id))
                audit_job(
                    conn,
                    rec,
                    "export.succeeded",
                    rows=result.rows,
                    details=_result_details(rec, result),
                )
        # Cancelled, failed by the reaper, or taken over, while the last chunk was written.
        if done.rowcount != 1:
            with engine.connect() as conn:
                now_row = conn.execute(
                    select(exports.c.status, exports.c.attempt).where(exports.c.id == export_id)
                ).one()
            if now_row.attempt != attempt:  # the newer run owns the final path: leave it be
                raise _Superseded("another run took over this export")
            discard_file(settings, export_id, rec.format, stored)
            if now_row.status != "running":
                raise _Superseded("another process marked this export as failed")
            raise ExportCancelled("export cancelled")
    except _Superseded:
        log.warning("export superseded", extra={"export_id": export_id})
    except ExportCancelled:
        with engine.begin() as conn:
            finish(
                conn, export_id, status="cancelled", values={"error": "cancelled"}, attempt=attempt
            )
        log.info("export cancelled", extra={"export_id": export_id})
    except Exception as exc:
        reason = reason_of(exc)
        with engine.begin() as conn:
            if finish(conn, export_id, status="failed", values={"error": reason}, attempt=attempt):
                audit_job(conn, rec, "export.failed", reason=reason)
        log.error("export failed", extra={"export_id": export_id, "reason": reason}, exc_info=True)
    finally:
        heartbeat.stop()


def _spec_with_result(conn: Connection, export_id: str, result: SinkResult) -> str:
    """The export's frozen spec with what writing found: cells cut (xlsx) and sheets."""
    spec = json.loads(
        conn.execute(select(exports.c.spec).where(exports.c.id == export_id)).scalar_one()
    )
    if result.truncated_cells:
        spec["truncated_cells"] = result.truncated_cells
    if result.sheets:
        spec["sheets"] = result.sheets
    return json.dumps(spec, sort_keys=True)


def _result_details(rec: ExportRecord, result: SinkResult) -> dict[str, Any]:
    """The details of ``export.succeeded``: size, hash, format, and any cells cut."""
    details: dict[str, Any] = {"bytes": result.bytes, "sha256": result.sha256}
    if rec.format != "csv":
        details["format"] = rec.format
    if result.truncated_cells:
        details["truncated_cells"] = result.truncated_cells
    if result.sheets > 1:
        details["sheets"] = result.sheets
    return details
