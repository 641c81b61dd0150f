"""Pydantic models shared by every interface: filter specs, export requests and records, events."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Privacy = Literal["public", "standard", "full"]
Role = Literal["viewer", "analyst", "admin"]
ExportFormat = Literal["csv", "csv.gz", "xlsx", "parquet", "jsonl", "jsonl.gz"]
ExportStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
Interface = Literal["cli", "api", "dashboard", "notebook", "scheduler"]

PRIVACY_LEVELS: tuple[Privacy, ...] = ("public", "standard", "full")
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
#: The privacy levels each role may export.
ALLOWED_LEVELS: dict[Role, tuple[Privacy, ...]] = {
    "viewer": ("public",),
    "analyst": ("public", "standard"),
    "admin": ("public", "standard", "full"),
}
ACTIVE_STATUSES: tuple[ExportStatus, ...] = ("queued", "running")
FINAL_STATUSES: tuple[ExportStatus, ...] = ("succeeded", "failed", "cancelled", "expired")


class FilterSpec(BaseModel):
    """One selection of rows. Drives the charts, the preview, the export and the share link.

    Field names are those of the share link and of the API's ``filters`` object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    since: date | datetime | None = None
    until: date | datetime | None = None
    success: bool | None = None
    where: str | None = None

    def is_empty(self) -> bool:
        """Whether the spec selects everything."""
        return self == FilterSpec()

    def to_json(self) -> str:
        """A compact JSON form, without empty fields."""
        return json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True)


class ExportRequest(BaseModel):
    """What a user asks to export: the API's request body, also built by the CLI and pages."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    filters: FilterSpec = Field(default_factory=FilterSpec)
    columns: list[str] | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    privacy: Privacy = "standard"
    format: ExportFormat = "csv"
    excel: bool = False


class ExportRecord(BaseModel):
    """An export row as every interface sees it."""

    id: str
    owner: str
    dataset: str
    status: ExportStatus
    privacy: Privacy
    format: ExportFormat
    excel: bool = False
    filters: FilterSpec
    columns: list[str] | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    rows_done: int = 0
    rows_total: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    interface: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    file_path: str | None = None
    truncated_cells: int = 0
    sheets: int = 0

    @property
    def note(self) -> str | None:
        """What the reader of the file should know beyond its rows (cells cut, sheets), if any."""
        parts = []
        if self.sheets > 1:
            parts.append(f"{self.sheets} sheets, each starting with the header row")
        if self.truncated_cells:
            noun = "cell was" if self.truncated_cells == 1 else "cells were"
            parts.append(
                f"{self.truncated_cells:,} {noun} longer than Excel's 32,767-character limit "
                "and cut (marked at the end)"
            )
        return "; ".join(parts) or None

    @property
    def file_name(self) -> str:
        """The name offered for download."""
        return f"{self.dataset}-{self.id[:8]}.{self.format}"  # the format is the extension

    def public(self) -> dict[str, Any]:
        """The fields of ``GET /api/exports/{id}`` (and ``exports list --json``)."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "status": self.status,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "error": self.error,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class AuditEvent(BaseModel):
    """One audit record."""

    id: int
    at: datetime
    event: str
    actor: str
    interface: str | None = None
    export_id: str | None = None
    dataset: str | None = None
    privacy: str | None = None
    rows: int | None = None
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The JSON form of ``audit --json``: event, actor, at and the event's details."""
        out: dict[str, Any] = {"event": self.event, "actor": self.actor, "at": self.at.isoformat()}
        for key in ("interface", "export_id", "dataset", "privacy", "rows", "reason"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.details)
        return out
