"""The export engine: plans, the one redaction path shared by preview and file, size estimates."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from factories import SECRET, insert_executions

from nano_export.csvcells import format_frame
from nano_export.db import get_engine
from nano_export.errors import BadInput, ExportCancelled, InvalidFilter, UnknownDataset
from nano_export.exporter import estimate_bytes, plan_export, preview, run_export
from nano_export.models import ExportRequest, FilterSpec

KEY = "exporter-test-secret-0123456789abcdef"


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    eng = get_engine(db_url)
    insert_executions(eng, 60)
    return eng


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


@pytest.mark.parametrize("level", ["public", "standard", "full"])
def test_the_preview_and_the_file_redact_identically(engine, tmp_path: Path, level: str) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy=level))  # type: ignore[arg-type]
    out = tmp_path / "file.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=7)
    shown = format_frame(preview(engine, plan, secret=KEY, limit=60), plan.output_kinds)
    written = _read(out)
    assert len(written) == 60
    for column in ("prompt", "response", "user", "session_id"):
        if column not in plan.output_names:
            continue
        from_preview = ["" if v is None else v for v in shown[column]]
        assert from_preview == [row[column] for row in written], column
    text = out.read_text()
    assert SECRET not in text
    assert ("bob@example.com" in text) == (level == "full")
    assert ("prompt" in written[0]) == (level != "public")


def test_columns_renames_and_order_follow_the_plan(engine, tmp_path: Path) -> None:
    plan = plan_export(
        ExportRequest(
            dataset="performance-metrics",
            columns=["cost_usd", "model", "execution_id"],
            rename={"cost_usd": "cost"},
            filters=FilterSpec(where="execution_id <= 2"),
        )
    )
    out = tmp_path / "m.csv"
    result = run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=100)
    assert out.read_text().splitlines()[0] == "cost,model,execution_id"
    assert result.rows == 2


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (ExportRequest(dataset="nope"), UnknownDataset, "evaluation-results"),
        (ExportRequest(dataset="performance-metrics", columns=["x"]), BadInput, "unknown column"),
        (
            ExportRequest(dataset="performance-metrics", columns=["model", "model"]),
            BadInput,
            "listed twice",
        ),
        (
            ExportRequest(dataset="evaluation-results", privacy="public", columns=["response"]),
            BadInput,
            "free-text",
        ),
        (ExportRequest(dataset="performance-metrics", rename={"x": "y"}), BadInput, "'x'"),
        (ExportRequest(dataset="performance-metrics", rename={"model": " "}), BadInput, "empty"),
        (
            ExportRequest(dataset="performance-metrics", rename={"model": "provider"}),
            BadInput,
            "same name",
        ),
        (
            ExportRequest(dataset="performance-metrics", filters=FilterSpec(where="x ~ '('")),
            InvalidFilter,
            "invalid regular expression",
        ),
    ],
)
def test_bad_plans_name_what_is_wrong(
    request_: ExportRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_export(request_)


def test_public_level_leaves_free_text_out_by_default() -> None:
    plan = plan_export(ExportRequest(dataset="agent-interactions", privacy="public"))
    assert "arguments" not in plan.columns and "result" not in plan.columns
    assert "tool_name" in plan.columns


def test_the_size_estimate_is_close_to_the_real_file(engine, tmp_path: Path) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    out = tmp_path / "e.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=1000)
    estimate = estimate_bytes(engine, plan, secret=KEY, rows=60)
    assert abs(estimate - out.stat().st_size) / out.stat().st_size < 0.02
    assert estimate_bytes(engine, plan, secret=KEY, rows=0) == 0
    empty = plan_export(
        ExportRequest(dataset="evaluation-results", filters=FilterSpec(where="execution_id < 0"))
    )
    assert estimate_bytes(engine, empty, secret=KEY, rows=5) == 0


def test_a_cancelled_run_leaves_nothing_behind(engine, tmp_path: Path) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "c.csv"
    seen: list[int] = []
    with pytest.raises(ExportCancelled):
        run_export(
            engine,
            plan,
            out_path=out,
            secret=KEY,
            chunk_rows=10,
            on_progress=seen.append,
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [10, 20]
    assert list(folder.iterdir()) == []


def test_a_read_error_mid_export_propagates_and_leaves_no_file(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nano_export import exporter

    real = exporter.read_chunks

    def failing(conn, plan, chunk_rows):  # type: ignore[no-untyped-def]
        chunks = real(conn, plan, chunk_rows)
        yield next(chunks)
        raise RuntimeError("connection lost")

    monkeypatch.setattr(exporter, "read_chunks", failing)
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="connection lost"):
        run_export(engine, plan, out_path=folder / "x.csv", secret=KEY, chunk_rows=10)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "spec",
    [
        FilterSpec(),
        FilterSpec(provider=("openai", "ollama"), success=True),
        FilterSpec(since=date(2025, 8, 1), until=date(2025, 8, 1), test=("test_1", "Test 2")),
        FilterSpec(where="cost_usd > 0.0003 and model in ('gpt-5-mini', 'gpt-oss:20b')"),
        FilterSpec(where="response ~ '(?i)ANSWER 1' or started_at >= '2025-08-01T00:30:00Z'"),
        FilterSpec(where="error is not null and not (execution_id in (7, 14))"),
    ],
)
def test_the_file_holds_exactly_the_rows_the_filter_selects(
    engine, tmp_path: Path, spec: FilterSpec
) -> None:
    plan = plan_export(ExportRequest(dataset="evaluation-results", filters=spec))
    with engine.connect() as conn:
        expected = [row.execution_id for row in conn.execute(plan.statement())]
    out = tmp_path / "f.csv"
    run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=8)
    assert [int(r["execution_id"]) for r in _read(out)] == expected
    assert expected  # every spec above selects something
