"""Export rows: reading them as records, finishing them, and auditing what happens to them."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from nano_export import audit
from nano_export.db import as_utc, utcnow
from nano_export.errors import NotFound
from nano_export.exporter import ExportPlan
from nano_export.jobs.limits import reap_stale
from nano_export.models import (
    ACTIVE_STATUSES,
    ExportRecord,
    ExportRequest,
    FilterSpec,
    Interface,
    Role,
)
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings


def worker_name() -> str:
    """This process, as the ``worker`` column names it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def to_record(row: Any) -> ExportRecord:
    """An ``exports`` row as its record, with the frozen spec unpacked."""
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


def frozen_spec(request: ExportRequest, plan: ExportPlan) -> str:
    """The request's filters, columns and renames as the JSON the row keeps."""
    return json.dumps(
        {
            "filters": request.filters.model_dump(mode="json", exclude_defaults=True),
            "columns": list(plan.columns) if request.columns else None,
            "rename": plan.rename,
            "excel": request.excel,
        },
        sort_keys=True,
    )


def load(engine: Engine, export_id: str) -> ExportRecord:
    """The record of one export; NotFound when there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(exports).where(exports.c.id == export_id)).first()
    if row is None:
        raise NotFound(f"no export {export_id}")
    return to_record(row)


def finish(
    conn: Connection,
    export_id: str,
    *,
    status: str,
    values: dict[str, Any],
    attempt: int | None = None,
) -> bool:
    """Give the export its final ``status`` and free its slot, in the caller's transaction.

    With ``attempt``, only while that run is still the export's latest (a run given up on and
    started again elsewhere must not finish it). True when the row changed.
    """
    stmt = update(exports).where(exports.c.id == export_id)
    if attempt is not None:
        stmt = stmt.where(exports.c.attempt == attempt, exports.c.status.in_(ACTIVE_STATUSES))
    changed = conn.execute(
        stmt.values(status=status, finished_at=utcnow(), heartbeat_at=utcnow(), **values)
    ).rowcount
    if changed != 1:
        return False
    conn.execute(delete(export_slots).where(export_slots.c.export_id == export_id))
    return True


def audit_job(
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


def reason_of(exc: BaseException) -> str:
    """The first line of an error, short enough for the row and the audit."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


def get_export(
    engine: Engine,
    *,
    export_id: str,
    user: str,
    role: Role,
    settings: Settings | None = None,
) -> ExportRecord:
    """The export if the caller owns it or is an admin; otherwise NotFound, revealing nothing.

    With ``settings``, a dead export (heartbeat older than the timeout) is failed first, so every
    reader sees it as it is.
    """
    if settings is not None:
        reap_stale(engine, settings)
    rec = load(engine, export_id)  # NotFound, with the same message, when there is none
    if role != "admin" and rec.owner != user:
        raise NotFound(f"no export {export_id}")
    return rec


def list_exports(
    engine: Engine,
    *,
    user: str | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
) -> list[ExportRecord]:
    """Exports newest first: one user's, or everyone's when ``user`` is None.

    With ``settings``, dead exports are failed first (as in :func:`get_export`).
    """
    if settings is not None:
        reap_stale(engine, settings)
    stmt = select(exports).order_by(exports.c.created_at.desc(), exports.c.id)
    if user is not None:
        stmt = stmt.where(exports.c.owner == user)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [to_record(r) for r in conn.execute(stmt)]


def wait_for(engine: Engine, export_id: str, timeout: float = 600.0) -> ExportRecord:
    """Poll until the export reaches a final status; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        rec = load(engine, export_id)
        if rec.status not in ACTIVE_STATUSES:
            return rec
        if time.monotonic() > deadline:
            raise TimeoutError(f"export {export_id} still {rec.status} after {timeout} s")
        time.sleep(0.1)
