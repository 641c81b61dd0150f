"""Export files: where an export's file lives, serving it for download, and retention.

The file sink writes a local file (the export folder is the staging area); :func:`store_file`
then hands it to the export store (``NANO_EXPORT_STORAGE_URL``), which on the default local store is
the same folder and on S3 an upload through a temporary key. Downloads and retention go through
the store, so any process of the installation can serve or delete any export's file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
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
from nano_export.storage import Storage, StorageError, get_storage

log = logging.getLogger(__name__)


def object_name(export_id: str, fmt: ExportFormat) -> str:
    """An export's file name in the store (the format is also the file extension)."""
    return f"{export_id}.{fmt}"


def final_path(export_dir: Path, export_id: str, fmt: ExportFormat) -> Path:
    """Where the export folder keeps (or stages) an export's file."""
    return export_dir / object_name(export_id, fmt)


def is_staged(settings: Settings, export_id: str, fmt: ExportFormat, written: Path) -> bool:
    """Whether ``written`` is a local copy waiting for a remote store (not a file of its own)."""
    if get_storage(settings).is_local:
        return False
    return written.resolve() == final_path(settings.export_dir, export_id, fmt).resolve()


def store_file(settings: Settings, export_id: str, fmt: ExportFormat, written: Path) -> str:
    """Hand a finished file to the export store; returns what the export's row records.

    A file written elsewhere (a CLI or notebook ``--out``) stays where it is and is not stored.
    """
    if written.resolve() != final_path(settings.export_dir, export_id, fmt).resolve():
        return str(written)
    return get_storage(settings).publish(written, object_name(export_id, fmt))


def discard_file(settings: Settings, export_id: str, fmt: ExportFormat, recorded: str) -> None:
    """Remove a stored file whose export did not end ``succeeded`` after all (cancel, reaper)."""
    storage = get_storage(settings)
    name = object_name(export_id, fmt)
    if recorded == storage.uri(name):
        storage.delete(name)
    else:
        Path(recorded).unlink(missing_ok=True)


def downloadable(rec: ExportRecord, storage: Storage) -> bool:
    """Whether ``rec`` is a finished export whose file is its own in ``storage``.

    The rule :func:`open_download` applies (the dashboard shows a download link only where it
    holds): a CLI or notebook ``--out`` file, kept elsewhere, is never served.
    """
    if rec.status != "succeeded" or not rec.file_path:
        return False
    own = storage.uri(object_name(rec.id, rec.format))
    if storage.is_local:
        return Path(rec.file_path).resolve() == Path(own).resolve()
    return rec.file_path == own


@dataclass(frozen=True)
class StoredFile:
    """A finished export's file in the store, ready to be sent."""

    storage: Storage
    name: str
    size: int

    @property
    def local_path(self) -> Path | None:
        """The file on this machine's disk when the store is local (served from disk)."""
        return self.storage.local_path(self.name) if self.storage.is_local else None

    def iter_bytes(self) -> Iterator[bytes]:
        """The file's bytes, block by block, as they are read from the store."""
        return self.storage.iter_bytes(self.name)


def open_download(
    engine: Engine,
    *,
    export_id: str,
    user: str,
    role: Role,
    interface: Interface,
    storage: Storage,
) -> tuple[StoredFile, ExportRecord]:
    """The file of a finished export the caller may see, audited as ``export.downloaded``.

    Only the export's own object in the store is ever served — never a path taken from the
    database as it stands, and never a symbolic link — so a CLI ``--out`` file (the user's own) or
    a tampered row cannot make the server hand out another file.
    """
    rec = get_export(engine, export_id=export_id, user=user, role=role)
    if rec.status != "succeeded" or not rec.file_path:
        raise NotReady(f"export {export_id} is {rec.status}; only a finished export has a file")
    if not downloadable(rec, storage):
        raise NotReady(
            f"export {export_id} was written to a file of its own by the command line or a "
            "notebook; only exports kept in the export store can be downloaded"
        )
    name = object_name(rec.id, rec.format)
    if not storage.exists(name):
        raise NotReady(f"the file of export {export_id} is no longer in the export store")
    size = rec.bytes if rec.bytes is not None else storage.size(name)
    with engine.begin() as conn:
        audit_job(
            conn, rec, "export.downloaded", actor=user, interface=interface, rows=rec.rows_done
        )
    return StoredFile(storage, name, size), rec


def prune_exports(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete files of exports older than the retention period and mark them ``expired``."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.export_retention_days)
    with engine.connect() as conn:
        rows = conn.execute(
            select(exports).where(exports.c.status == "succeeded", exports.c.finished_at < cutoff)
        ).all()
    pruned = 0
    storage = get_storage(settings)
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
        # Only the store's own objects are ours to delete; a CLI --out file is the user's.
        if downloadable(rec.model_copy(update={"status": "succeeded"}), storage):
            try:
                storage.delete(object_name(rec.id, rec.format))
            except StorageError:
                log.warning("could not delete an expired file", extra={"export_id": rec.id})
        pruned += 1
    return pruned
