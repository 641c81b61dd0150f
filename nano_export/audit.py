"""The audit log: an append-only table of who did what, from which interface.

Write an event in the same transaction as the action it records, or after that action committed —
never for an action that rolled back. Rows are never updated or deleted.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from nano_export.db import as_utc, utcnow
from nano_export.models import AuditEvent
from nano_export.schema import audit_events

log = logging.getLogger(__name__)

EVENTS: Final = frozenset(
    {
        "export.requested",
        "export.started",
        "export.succeeded",
        "export.failed",
        "export.cancelled",
        "export.denied",
        "export.downloaded",
        "export.expired",
        "export.retried",
        "login.succeeded",
        "login.failed",
        "login.throttled",
        "logout",
        "session.revoked",
        "user.created",
        "user.removed",
        "user.role_changed",
        "user.password_changed",
        "user.imported",
        "token.created",
        "token.revoked",
        "schedule.created",
        "schedule.changed",
        "schedule.run",
        "email.sent",
        "email.failed",
    }
)


def record(
    conn: Connection,
    *,
    event: str,
    actor: str,
    interface: str | None = None,
    export_id: str | None = None,
    dataset: str | None = None,
    privacy: str | None = None,
    rows: int | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one audit event on ``conn`` (inside the caller's transaction)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    conn.execute(
        audit_events.insert().values(
            at=at or utcnow(),
            event=event,
            actor=actor,
            interface=interface,
            export_id=export_id,
            dataset=dataset,
            privacy=privacy,
            rows=rows,
            reason=reason,
            details=json.dumps(details, sort_keys=True, default=str) if details else None,
        )
    )
    fields = {"event": event, "user": actor, "export_id": export_id, "reason": reason}
    if interface is not None:
        fields["interface"] = interface
    log.info("audit event", extra=fields)


def list_events(
    conn: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    event: str | None = None,
    export_id: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Audit events, oldest first, narrowed by the given fields."""
    t = audit_events
    stmt = select(t).order_by(t.c.at, t.c.id)
    if since is not None:
        stmt = stmt.where(t.c.at >= since)
    if until is not None:
        stmt = stmt.where(t.c.at <= until)
    if actor is not None:
        stmt = stmt.where(t.c.actor == actor)
    if event is not None:
        stmt = stmt.where(t.c.event == event)
    if export_id is not None:
        stmt = stmt.where(t.c.export_id == export_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    out = []
    for row in conn.execute(stmt).mappings():
        data = dict(row)
        data["at"] = as_utc(data["at"])
        data["details"] = json.loads(data["details"]) if data["details"] else {}
        out.append(AuditEvent.model_validate(data))
    return out
