"""Accepting an export (validate, authorise, take a slot, insert its row) and cancelling one."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from sqlalchemy import Engine, delete, select, update

from nano_export import audit
from nano_export.db import utcnow
from nano_export.errors import BadInput, ExportLimitReached
from nano_export.exporter import plan_export
from nano_export.jobs import queue
from nano_export.jobs.files import final_path
from nano_export.jobs.limits import check_privacy, deny, reap_stale, take_slot
from nano_export.jobs.records import (
    audit_job,
    finish,
    frozen_spec,
    get_export,
    load,
    reason_of,
    worker_name,
)
from nano_export.jobs.running import ProgressHook, run_job
from nano_export.jobs.threads import start_thread
from nano_export.models import ACTIVE_STATUSES, ExportRecord, ExportRequest, Interface, Role
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings

log = logging.getLogger(__name__)


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
    path = out_path or final_path(settings.export_dir, export_id, request.format)
    # On PostgreSQL a worker runs it; an export the caller waits for, or one written to the
    # caller's own file, runs here.
    runner = "queue" if settings.uses_queue and not wait and out_path is None else "thread"
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            exports.insert().values(
                id=export_id,
                owner=user,
                dataset=request.dataset,
                spec=frozen_spec(request, plan),
                privacy=request.privacy,
                format=request.format,
                status="queued",
                rows_done=0,
                file_path=str(path),
                interface=interface,
                worker=worker_name(),
                cancel_requested=False,
                runner=runner,
                created_at=now,
                heartbeat_at=now,
            )
        )
        took = take_slot(
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
        "export queued",
        extra={
            "export_id": export_id,
            "user": user,
            "interface": interface,
            "dataset": plan.dataset.name,
        },
    )
    if runner == "queue":
        _defer(engine, settings, export_id)
    elif wait:
        run_job(engine, settings, export_id, plan, path, on_progress)
    else:
        start_thread(engine, settings, export_id, plan, path, on_progress)
    return load(engine, export_id)


def _defer(engine: Engine, settings: Settings, export_id: str) -> None:
    """Hand the export to the worker pool; if the queue cannot take it, the export fails."""
    try:
        queue.defer_export(settings, export_id)
    except Exception as exc:
        reason = f"could not queue the export: {reason_of(exc)}"
        rec = load(engine, export_id)
        with engine.begin() as conn:
            if finish(conn, export_id, status="failed", values={"error": reason}):
                audit_job(conn, rec, "export.failed", reason=reason)
        log.error("export not queued", extra={"export_id": export_id, "reason": reason})
        return
    queue.start_embedded(settings)


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
        audit_job(
            conn, rec, "export.cancelled", actor=user, interface=interface, rows=rec.rows_done
        )
        # A job still waiting for a worker ends now (its job finds it ended and does nothing);
        # a running one stops at its next cancel check.
        conn.execute(
            update(exports)
            .where(
                exports.c.id == export_id, exports.c.status == "queued", exports.c.runner == "queue"
            )
            .values(status="cancelled", error="cancelled", finished_at=utcnow())
        )
        conn.execute(
            delete(export_slots).where(
                export_slots.c.export_id == export_id,
                select(exports.c.status).where(exports.c.id == export_id).scalar_subquery()
                == "cancelled",
            )
        )
    return load(engine, export_id)
