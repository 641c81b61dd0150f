"""Export files: where an export's file lives, serving it for download, and retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update

from nano_export import audit
from nano_export.db import utcnow
from nano_export.errors import NotReady
from nano_export.jobs.records import audit_job, get_export, to_record
from nano_export.models import ExportFormat, ExportRecord, Interface, Role
from nano_export.schema import exports
from nano_export.settings import Settings


def final_path(export_dir: Path, export_id: str, fmt: ExportFormat) -> Path:
    """Where the export folder keeps an export's file (the format is also the file extension)."""
    return export_dir / f"{export_id}.{fmt}"


def downloadable(rec: ExportRecord, export_dir: Path) -> bool:
    """Whether ``rec`` is a finished export whose file is its own in ``export_dir``.

    The rule :func:`open_download` applies (the dashboard shows a download link only where it
    holds): a CLI or notebook ``--out`` file, kept elsewhere, is never served.
    """
    if rec.status != "succeeded" or not rec.file_path:
        return False
    return Path(rec.file_path).resolve() == final_path(export_dir, rec.id, rec.format).resolve()


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
    path = final_path(export_dir, rec.id, rec.format)
    if not downloadable(rec, export_dir):
        raise NotReady(
            f"export {export_id} was written to a file of its own by the command line or a "
            "notebook; only exports kept in the export folder can be downloaded"
        )
    if path.is_symlink() or not path.is_file():
        raise NotReady(f"the file of export {export_id} is no longer on disk")
    with engine.begin() as conn:
        audit_job(
            conn, rec, "export.downloaded", actor=user, interface=interface, rows=rec.rows_done
        )
    return path, rec


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
        rec = to_record(row)
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
