"""Tables of the History and Audit pages as plain DataFrames."""

from __future__ import annotations

import pandas as pd

from nano_export import filters, jobs
from nano_export.csvcells import format_cells
from nano_export.csvfmt import encode_rows, header_line
from nano_export.datasets import Kind
from nano_export.models import AuditEvent, ExportRecord
from nano_export.storage import Storage
from nano_export.ui import widgets


def exports_frame(records: list[ExportRecord], *, storage: Storage) -> pd.DataFrame:
    """One row per export, with a download link for finished ones the server serves (none for a
    CLI or notebook ``--out`` file outside the export store)."""
    rows = [
        {
            "created": r.created_at,
            "owner": r.owner,
            "dataset": r.dataset,
            "status": r.status,
            "rows": r.rows_done if r.status == "succeeded" else r.rows_total,
            "format": r.format,
            "size": widgets.fmt_bytes(r.bytes) if r.bytes is not None else "",
            "privacy": r.privacy,
            "filters": filters.describe(r.filters),
            "sha256": r.sha256 or "",
            "download": widgets.download_url(r.id) if jobs.downloadable(r, storage) else None,
            "id": r.id,
        }
        for r in records
    ]
    columns = ["created", "owner", "dataset", "status", "rows", "format", "size", "privacy"]
    columns += ["filters", "sha256", "download", "id"]
    return pd.DataFrame(rows, columns=columns)


def audit_frame(events: list[AuditEvent]) -> pd.DataFrame:
    """One row per audit event, newest first."""
    rows = [
        {
            "at": e.at,
            "event": e.event,
            "actor": e.actor,
            "interface": e.interface,
            "export_id": e.export_id,
            "dataset": e.dataset,
            "privacy": e.privacy,
            "rows": e.rows,
            "reason": e.reason,
            "details": ", ".join(f"{k}={v}" for k, v in e.details.items()),
        }
        for e in reversed(events)
    ]
    columns = ["at", "event", "actor", "interface", "export_id", "dataset", "privacy", "rows"]
    columns += ["reason", "details"]
    return pd.DataFrame(rows, columns=columns)


def audit_csv(frame: pd.DataFrame) -> bytes:
    """The audit table as CSV in the export format: RFC 4180, UTC times, formula guard.

    Actor names come from login attempts, so a cell such as ``=HYPERLINK(…)`` is possible: it must
    reach a spreadsheet as text, never as a formula.
    """
    kinds: dict[str, Kind] = {c: "text" for c in frame.columns}
    kinds.update({"at": "datetime", "rows": "int"})
    body = encode_rows(format_cells(frame, kinds)) if len(frame) else b""
    return header_line(list(frame.columns)) + bytes(body)


def blank_nulls(frame: pd.DataFrame, *, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """A copy for display where empty cells are blank instead of the grid's "None".

    Text columns get ``""``; a numeric column with gaps becomes text (``1,234`` or ``""``);
    complete numeric and datetime columns are kept as they are (sorting, formats), and so are
    the ``keep`` columns (a link column shows its display text for ``""``, nothing for None).
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if name in keep or not col.isna().any():
            continue
        if pd.api.types.is_datetime64_any_dtype(col):
            continue
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            whole = col.dropna().map(float).map(float.is_integer).all()
            out[name] = ["" if pd.isna(v) else (f"{int(v):,}" if whole else f"{v:g}") for v in col]
        else:
            out[name] = col.astype(object).where(col.notna(), "")
    return out
