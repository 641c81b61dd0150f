"""The per-user limit: concurrency slots, refused requests, and freeing the slots of dead exports.

The limit is a set of slots in ``export_slots`` whose primary key makes taking one atomic on every
database, so it holds across every process sharing it. A process that dies mid-export stops its
heartbeat; whichever process looks next marks the export failed and frees its slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from nano_export import audit, privacy
from nano_export.csvfmt import TEMP_SUFFIX
from nano_export.db import utcnow
from nano_export.errors import PermissionDenied
from nano_export.models import ACTIVE_STATUSES, ExportRequest, Interface, Role
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings
from nano_export.storage import get_storage


def take_slot(conn: Connection, *, owner: str, export_id: str, limit: int) -> bool:
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


def reap_stale(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Fail exports whose heartbeat is older than the timeout and free their slots.

    Only exports run by threads: a queued job waits for a worker as long as it takes, and one whose
    worker died is run again by the queue (``jobs.queue.retry_stalled``).
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_s)
    active = and_(exports.c.status.in_(ACTIVE_STATUSES), exports.c.runner == "thread")
    with engine.connect() as conn:
        stale = conn.execute(
            select(exports.c.id).where(active, exports.c.heartbeat_at < cutoff)
        ).scalars()
        candidates = list(stale)
    reaped = 0
    reason = f"the worker stopped responding (no heartbeat for {settings.heartbeat_timeout_s} s)"
    for export_id in candidates:
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
        remove_leftovers(row.file_path)
        name = Path(row.file_path or "").name
        if name.startswith(f"{export_id}."):  # what an upload that died half-way left in the store
            get_storage(settings).remove_leftovers(name)
        reaped += 1
    return reaped


def remove_leftovers(file_path: str | None) -> None:
    """Delete the temporary files a dead worker left beside the export's final path."""
    if not file_path:
        return
    final = Path(file_path)
    if final.parent.is_dir():
        for leftover in final.parent.glob(f".{final.name}.*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
