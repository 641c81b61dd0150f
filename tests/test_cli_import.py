"""The ``import`` command: counts per file and in total, exit code 2 for a broken file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from nano_export import schema
from nano_export.cli import main
from nano_export.db import get_engine

FIXTURES = Path(__file__).parent / "fixtures" / "importers"


def _executions(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.executions)).scalar_one())


def test_import_prints_counts_per_file_and_total_then_nothing_new(
    db_url: str, shared_data: Path
) -> None:
    files = sorted(str(p) for p in shared_data.glob("eval_results_*.md"))
    runner = CliRunner()
    result = runner.invoke(main, ["--db", db_url, "import", *files])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{files[0]}: 9 executions added (0 already present)"
    assert lines[-1] == "Total: 36 executions added (0 already present) from 4 files"
    again = runner.invoke(main, ["--db", db_url, "import", *files])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[-1] == (
        "Total: 0 executions added (36 already present) from 4 files"
    )
    assert _executions(db_url) == 36


def test_import_of_all_formats_reports_skipped_tool_calls(sqlite_url: str) -> None:
    paths = [
        str(FIXTURES / "eval_results_7_quirks_test.md"),
        str(FIXTURES / "post_tool_use.json"),
        str(FIXTURES / "responses.jsonl"),
    ]
    result = CliRunner().invoke(main, ["--db", sqlite_url, "import", *paths])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{paths[0]}: 5 executions added (0 already present)",
        f"{paths[1]}: 3 executions added (0 already present), 2 other tool calls skipped",
        f"{paths[2]}: 3 executions added (0 already present)",
        "Total: 11 executions added (0 already present) from 3 files",
    ]


def test_import_stops_with_exit_2_at_a_broken_file_keeping_earlier_files(db_url: str) -> None:
    good = str(FIXTURES / "responses.jsonl")
    broken = str(FIXTURES / "broken_line3.jsonl")
    later = str(FIXTURES / "post_tool_use.json")
    result = CliRunner().invoke(main, ["--db", db_url, "import", good, broken, later])
    assert result.exit_code == 2
    assert f"{good}: 3 executions added" in result.output
    assert f"Error: {broken}:3: invalid JSON" in result.output
    assert f"imported before it: {good}; not read: {later}" in result.output
    assert "Traceback" not in result.output
    assert _executions(db_url) == 3  # the good file only


def test_import_of_a_missing_path_is_bad_input(sqlite_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", sqlite_url, "import", str(tmp_path / "nope.md")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_import_help_names_the_three_formats() -> None:
    result = CliRunner().invoke(main, ["import", "--help"])
    assert result.exit_code == 0
    for words in ("markdown", "post_tool_use.json", "JSONL", "idempotent", "exit code 2"):
        assert words in result.output
