"""The export lifecycle, shared by every process through the ``exports`` table.

An export is a row: queued → running → succeeded | failed | cancelled, and later expired. It runs in
a background thread of the process that accepted it (or in the caller's thread with ``wait=True``)
and writes its progress and a heartbeat to its row, so any process can follow it. The per-user
concurrency limit is a set of slots in ``export_slots`` whose primary key makes taking one atomic on
every database. A process that dies mid-export stops its heartbeat; whichever process looks next
marks the export failed and frees its slot.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from nano_export import audit, privacy
from nano_export.db import as_utc, utcnow
from nano_export.errors import (
    BadInput,
    ExportCancelled,
    ExportFailed,
    ExportLimitReached,
    NotFound,
    NotReady,
    PermissionDenied,
)
from nano_export.exporter import ExportPlan, count_rows, plan_export, run_export
from nano_export.models import (
    ACTIVE_STATUSES,
    ExportFormat,
    ExportRecord,
    ExportRequest,
    FilterSpec,
    Interface,
    Role,
)
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings
from nano_export.sinkfile import TEMP_SUFFIX, SinkResult

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 10.0
ProgressHook = Callable[[int, int | None], None]

_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _record(row: Any) -> ExportRecord:
    data = dict(row._mapping)
    spec = json.loads(data.pop("spec"))
    for key in ("created_at", "started_at", "finished_at"):
        data[key] = as_utc(data[key])
    return ExportRecord(
        filters=FilterSpec.model_validate(spec.get("filters", {})),
        columns=spec.get("columns"),
        rename=spec.get("rename", {}),
        excel=spec.get("excel", False),
        truncated_cells=spec.get("truncated_cells", 0),
        sheets=spec.get("sheets", 0),
        **{k: v for k, v in data.items() if k in ExportRecord.model_fields},
    )


def _frozen_spec(request: ExportRequest, plan: ExportPlan) -> str:
    return json.dumps(
        {
            "filters": request.filters.model_dump(mode="json", exclude_defaults=True),
            "columns": list(plan.columns) if request.columns else None,
            "rename": plan.rename,
            "excel": request.excel,
        },
        sort_keys=True,
    )


def _final_path(export_dir: Path, export_id: str, fmt: ExportFormat) -> Path:
    """Where the export folder keeps an export's file (the format is also the file extension)."""
    return export_dir / f"{export_id}.{fmt}"


def _take_slot(conn: Connection, *, owner: str, export_id: str, limit: int) -> bool:
    """Insert the first free slot of ``owner``; False when all ``limit`` are taken.

    On PostgreSQL two processes may race for the same slot: the loser's INSERT violates the
    primary key inside a savepoint and moves on to the next slot. SQLite serialises writers, and
    this transaction already holds the write lock (it inserted the export row), so the free slot it
    sees cannot be taken by anyone else before it commits.
    """
    taken = set(
        conn.execute(select(export_slots.c.slot).where(export_slots.c.owner == owner)).scalars()
    )
    for slot in (s for s in range(limit) if s not in taken):
        values = {"owner": owner, "slot": slot, "export_id": export_id, "taken_at": utcnow()}
        if conn.dialect.name == "sqlite":
            conn.execute(export_slots.insert().values(**values))
            return True
        try:
            with conn.begin_nested():
                conn.execute(export_slots.insert().values(**values))
            return True
        except IntegrityError:
            continue
    return False


def deny(
    engine: Engine,
    *,
    user: str,
    request: ExportRequest,
    interface: Interface,
    reason: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit a refused export request as ``export.denied``, in a transaction of its own."""
    with engine.begin() as conn:
        audit.record(
            conn,
            event="export.denied",
            actor=user,
            interface=interface,
            dataset=request.dataset,
            privacy=request.privacy,
            reason=reason,
            details=details,
        )


def check_privacy(
    engine: Engine,
    *,
    user: str,
    role: Role,
    request: ExportRequest,
    interface: Interface,
    details: dict[str, Any] | None = None,
) -> None:
    """Refuse a privacy level above ``role`` with PermissionDenied, audited as ``export.denied``."""
    try:
        privacy.check_level(role, request.privacy)
    except PermissionDenied as exc:
        deny(
            engine,
            user=user,
            request=request,
            interface=interface,
            reason=str(exc),
            details=details,
        )
        raise


def submit_export(
    engine: Engine,
    settings: Settings,
    *,
    user: str,
    role: Role,
    request: ExportRequest,
    interface: Interface,
    wait: bool = False,
    out_path: Path | None = None,
    on_progress: ProgressHook | None = None,
) -> ExportRecord:
    """Validate, authorise and start an export; returns its record.

    Raises BadInput/InvalidFilter for a bad request, PermissionDenied for a privacy level above the
    role and ExportLimitReached at the per-user limit (both audited as ``export.denied``). With
    ``wait=True`` the export runs in the calling thread and the final record is returned.
    ``out_path`` writes the file somewhere other than the export folder (the CLI's ``--out``).
    """
    reap_stale(engine, settings)
    plan = plan_export(request)
    check_privacy(engine, user=user, role=role, request=request, interface=interface)
    export_id = secrets.token_urlsafe(18)
    path = out_path or _final_path(settings.export_dir, export_id, request.format)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            exports.insert().values(
                id=export_id,
                owner=user,
                dataset=request.dataset,
                spec=_frozen_spec(request, plan),
                privacy=request.privacy,
                format=request.format,
                status="queued",
                rows_done=0,
                file_path=str(path),
                interface=interface,
                worker=_worker_name(),
                cancel_requested=False,
                created_at=now,
                heartbeat_at=now,
            )
        )
        took = _take_slot(
            conn, owner=user, export_id=export_id, limit=settings.max_concurrent_exports
        )
        if took:
            audit.record(
                conn,
                event="export.requested",
                actor=user,
                interface=interface,
                export_id=export_id,
                dataset=request.dataset,
                privacy=request.privacy,
                details={"filters": request.filters.model_dump(mode="json", exclude_defaults=True)},
            )
    if not took:
        reason = (
            f"{user} already runs {settings.max_concurrent_exports} export(s), the most allowed "
            "at once; wait for one to finish or cancel one"
        )
        with engine.begin() as conn:
            conn.execute(delete(exports).where(exports.c.id == export_id))
        deny(engine, user=user, request=request, interface=interface, reason=reason)
        raise ExportLimitReached(reason)
    log.info(
        "export queued", extra={"export_id": export_id, "user": user, "dataset": plan.dataset.name}
    )
    if wait:
        _run(engine, settings, export_id, plan, path, on_progress)
    else:
        thread = threading.Thread(
            target=_run,
            args=(engine, settings, export_id, plan, path, on_progress),
            name=f"export-{export_id[:8]}",
            daemon=True,
        )
        with _threads_lock:
            _threads[export_id] = thread
        thread.start()
    return _load(engine, export_id)


def _load(engine: Engine, export_id: str) -> ExportRecord:
    with engine.connect() as conn:
        row = conn.execute(select(exports).where(exports.c.id == export_id)).first()
    if row is None:
        raise NotFound(f"no export {export_id}")
    return _record(row)


class _Superseded(Exception):
    """The export's row was finished by another process (the reaper) while it still ran."""


class _Heartbeat:
    """Touches the export row every few seconds while the export runs, even inside a slow query."""

    def __init__(self, engine: Engine, export_id: str) -> None:
        self._engine = engine
        self._id = export_id
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
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        update(exports)
                        .where(exports.c.id == self._id, exports.c.status.in_(ACTIVE_STATUSES))
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # a missed beat is retried; the reaper tolerates a minute
                log.warning("heartbeat failed", extra={"export_id": self._id}, exc_info=True)


def _finish(
    conn: Connection,
    export_id: str,
    *,
    status: str,
    values: dict[str, Any],
) -> None:
    conn.execute(
        update(exports)
        .where(exports.c.id == export_id)
        .values(status=status, finished_at=utcnow(), heartbeat_at=utcnow(), **values)
    )
    conn.execute(delete(export_slots).where(export_slots.c.export_id == export_id))


def _run(
    engine: Engine,
    settings: Settings,
    export_id: str,
    plan: ExportPlan,
    path: Path,
    on_progress: ProgressHook | None,
) -> None:
    """Run one export to its end, recording every outcome on its row and in the audit log."""
    rec = _load(engine, export_id)
    # The heartbeat runs from the start: a slow COUNT must not look like a dead worker.
    heartbeat = _Heartbeat(engine, export_id)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(exports)
                .where(exports.c.id == export_id)
                .values(status="running", started_at=utcnow(), heartbeat_at=utcnow())
            )
            _audit_job(conn, rec, "export.started")
        heartbeat.start()
        with engine.connect() as conn:
            total = count_rows(conn, plan)
        with engine.begin() as conn:
            conn.execute(update(exports).where(exports.c.id == export_id).values(rows_total=total))
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
                    .where(exports.c.id == export_id, exports.c.status == "running")
                    .values(rows_done=rows, heartbeat_at=utcnow())
                ).rowcount
            if alive != 1:
                raise _Superseded("another process marked this export as failed")
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
        heartbeat.stop()
        with engine.begin() as conn:
            spec = _spec_with_result(conn, export_id, result)
            done = conn.execute(
                update(exports)
                .where(
                    and_(
                        exports.c.id == export_id,
                        exports.c.status == "running",
                        exports.c.cancel_requested.is_(False),
                    )
                )
                .values(
                    status="succeeded",
                    rows_done=result.rows,
                    rows_total=result.rows,
                    bytes=result.bytes,
                    sha256=result.sha256,
                    file_path=str(result.path),
                    spec=spec,
                    finished_at=utcnow(),
                    heartbeat_at=utcnow(),
                )
            )
            if done.rowcount == 1:
                conn.execute(delete(export_slots).where(export_slots.c.export_id == export_id))
                _audit_job(
                    conn,
                    rec,
                    "export.succeeded",
                    rows=result.rows,
                    details=_result_details(rec, result),
                )
        if (
            done.rowcount != 1
        ):  # cancelled, or failed by the reaper, while the last chunk was written
            result.path.unlink(missing_ok=True)
            if _load(engine, export_id).status != "running":
                raise _Superseded("another process marked this export as failed")
            raise ExportCancelled("export cancelled")
    except _Superseded:
        log.warning("export superseded", extra={"export_id": export_id})
    except ExportCancelled:
        with engine.begin() as conn:
            _finish(conn, export_id, status="cancelled", values={"error": "cancelled"})
        log.info("export cancelled", extra={"export_id": export_id})
    except Exception as exc:
        reason = _reason(exc)
        with engine.begin() as conn:
            _finish(conn, export_id, status="failed", values={"error": reason})
            _audit_job(
                conn,
                rec,
                "export.failed",
                reason=reason,
            )
        log.error("export failed", extra={"export_id": export_id, "reason": reason}, exc_info=True)
    finally:
        heartbeat.stop()
        with _threads_lock:
            _threads.pop(export_id, None)


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


def _audit_job(
    conn: Connection,
    rec: ExportRecord,
    event: str,
    *,
    actor: str | None = None,
    interface: Interface | None = None,
    **details: Any,
) -> None:
    """An audit event about an export: by default its own job's, in the owner's name."""
    audit.record(
        conn,
        event=event,
        actor=actor or rec.owner,
        interface=interface or rec.interface,
        export_id=rec.id,
        dataset=rec.dataset,
        privacy=rec.privacy,
        **details,
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


def _visible(rec: ExportRecord, *, user: str, role: Role) -> bool:
    return role == "admin" or rec.owner == user


def get_export(engine: Engine, *, export_id: str, user: str, role: Role) -> ExportRecord:
    """The export if the caller owns it or is an admin; otherwise NotFound, revealing nothing."""
    try:
        rec = _load(engine, export_id)
    except NotFound:
        raise NotFound(f"no export {export_id}") from None
    if not _visible(rec, user=user, role=role):
        raise NotFound(f"no export {export_id}")
    return rec


def list_exports(
    engine: Engine, *, user: str | None = None, limit: int | None = None
) -> list[ExportRecord]:
    """Exports newest first: one user's, or everyone's when ``user`` is None."""
    stmt = select(exports).order_by(exports.c.created_at.desc(), exports.c.id)
    if user is not None:
        stmt = stmt.where(exports.c.owner == user)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(stmt)]


def cancel_export(
    engine: Engine, *, export_id: str, user: str, role: Role, interface: Interface = "cli"
) -> ExportRecord:
    """Ask a queued or running export to stop; its job removes the temporary file."""
    rec = get_export(engine, export_id=export_id, user=user, role=role)
    with engine.begin() as conn:
        changed = conn.execute(
            update(exports)
            .where(exports.c.id == export_id, exports.c.status.in_(ACTIVE_STATUSES))
            .values(cancel_requested=True)
        ).rowcount
        if changed != 1:
            raise BadInput(f"export {export_id} is {rec.status}; only a running export can stop")
        _audit_job(
            conn, rec, "export.cancelled", actor=user, interface=interface, rows=rec.rows_done
        )
    return _load(engine, export_id)


def wait_for(engine: Engine, export_id: str, timeout: float = 600.0) -> ExportRecord:
    """Poll until the export reaches a final status; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        rec = _load(engine, export_id)
        if rec.status not in ACTIVE_STATUSES:
            return rec
        if time.monotonic() > deadline:
            raise TimeoutError(f"export {export_id} still {rec.status} after {timeout} s")
        time.sleep(0.1)


def downloadable(rec: ExportRecord, export_dir: Path) -> bool:
    """Whether ``rec`` is a finished export whose file is its own in ``export_dir``.

    The rule :func:`open_download` applies (the dashboard shows a download link only where it
    holds): a CLI or notebook ``--out`` file, kept elsewhere, is never served.
    """
    if rec.status != "succeeded" or not rec.file_path:
        return False
    return Path(rec.file_path).resolve() == _final_path(export_dir, rec.id, rec.format).resolve()


def open_download(
    engine: Engine,
    *,
    export_id: str,
    user: str,
    role: Role,
    interface: Interface,
    export_dir: Path,
) -> tuple[Path, ExportRecord]:
    """The file of a finished export the caller may see, audited as ``export.downloaded``.

    Only the export's own file in ``export_dir`` is ever served — never a path taken from the
    database as it stands, and never a symbolic link — so a CLI ``--out`` file (the user's own) or
    a tampered row cannot make the server hand out another file.
    """
    rec = get_export(engine, export_id=export_id, user=user, role=role)
    if rec.status != "succeeded" or not rec.file_path:
        raise NotReady(f"export {export_id} is {rec.status}; only a finished export has a file")
    path = _final_path(export_dir, rec.id, rec.format)
    if not downloadable(rec, export_dir):
        raise NotReady(
            f"export {export_id} was written to a file of its own by the command line or a "
            "notebook; only exports kept in the export folder can be downloaded"
        )
    if path.is_symlink() or not path.is_file():
        raise NotReady(f"the file of export {export_id} is no longer on disk")
    with engine.begin() as conn:
        _audit_job(
            conn, rec, "export.downloaded", actor=user, interface=interface, rows=rec.rows_done
        )
    return path, rec


def reap_stale(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Fail exports whose heartbeat is older than the timeout and free their slots."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_s)
    active = exports.c.status.in_(ACTIVE_STATUSES)
    with engine.connect() as conn:
        stale = conn.execute(
            select(exports.c.id).where(active, exports.c.heartbeat_at < cutoff)
        ).scalars()
        candidates = list(stale)
    reaped = 0
    for export_id in candidates:
        reason = (
            f"the worker stopped responding (no heartbeat for {settings.heartbeat_timeout_s} s)"
        )
        with engine.begin() as conn:
            row = conn.execute(
                update(exports)
                .where(exports.c.id == export_id, active, exports.c.heartbeat_at < cutoff)
                .values(status="failed", error=reason, finished_at=now)
                .returning(
                    exports.c.owner, exports.c.dataset, exports.c.privacy, exports.c.file_path
                )
            ).first()
            if row is None:  # another process got there first, or it came back to life
                continue
            conn.execute(delete(export_slots).where(export_slots.c.export_id == export_id))
            audit.record(
                conn,
                event="export.failed",
                actor=row.owner,
                export_id=export_id,
                dataset=row.dataset,
                privacy=row.privacy,
                reason=reason,
            )
        _remove_leftovers(row.file_path)
        reaped += 1
    return reaped


def _remove_leftovers(file_path: str | None) -> None:
    """Delete the temporary files a dead worker left beside the export's final path."""
    if not file_path:
        return
    final = Path(file_path)
    if final.parent.is_dir():
        for leftover in final.parent.glob(f".{final.name}.*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def prune_exports(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete files of exports older than the retention period and mark them ``expired``."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.export_retention_days)
    with engine.connect() as conn:
        rows = conn.execute(
            select(exports).where(exports.c.status == "succeeded", exports.c.finished_at < cutoff)
        ).all()
    pruned = 0
    export_root = settings.export_dir.resolve()
    for row in rows:
        rec = _record(row)
        with engine.begin() as conn:
            changed = conn.execute(
                update(exports)
                .where(exports.c.id == rec.id, exports.c.status == "succeeded")
                .values(status="expired")
            ).rowcount
            if changed != 1:
                continue
            audit.record(
                conn,
                event="export.expired",
                actor="system",
                export_id=rec.id,
                dataset=rec.dataset,
                privacy=rec.privacy,
                rows=rec.rows_done,
                reason=f"older than {settings.export_retention_days} days",
            )
        if rec.file_path:
            path = Path(rec.file_path).resolve()
            # Only files in the export folder are ours to delete; a CLI --out file is the user's.
            if path.parent == export_root:
                path.unlink(missing_ok=True)
        pruned += 1
    return pruned
