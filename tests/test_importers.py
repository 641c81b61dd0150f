"""Importers: nano-agent evaluation markdown, hook logs and JSONL, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from nano_export import schema
from nano_export.db import as_utc
from nano_export.errors import ImportFailed
from nano_export.importers import import_file, import_paths, parse_file
from nano_export.importers.eval_markdown import split_row
from nano_export.pricing import PRICING_VERSION, compute_costs

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
SHARED_FILES = [
    "eval_results_1_dummy_test.md",
    "eval_results_2_basic_read_test.md",
    "eval_results_3_file_operations_test.md",
    "eval_results_4_code_analysis_test.md",
]


def _rows(engine: Engine) -> dict[tuple[str | None, str], dict[str, Any]]:
    """Every execution with its metrics and run, keyed by (test_id, model)."""
    e, m = schema.executions, schema.execution_metrics
    query = select(e, *[c for c in m.c if c.name != "execution_id"]).join(
        m, m.c.execution_id == e.c.id
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return {(r["test_id"], r["model"]): r for r in rows}


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _interactions(engine: Engine, execution_id: int) -> list[dict[str, Any]]:
    t = schema.interactions
    with engine.connect() as conn:
        result = conn.execute(select(t).where(t.c.execution_id == execution_id).order_by(t.c.seq))
        return [dict(r._mapping) for r in result]


def _shared(shared_data: Path) -> list[Path]:
    return [shared_data / name for name in SHARED_FILES]


# --- the real nano-agent files -------------------------------------------------------------------


def test_shared_eval_files_import_36_executions_matching_the_tables(
    engine: Engine, shared_data: Path
) -> None:
    reports = import_paths(engine, _shared(shared_data))
    assert [(r.added, r.present) for r in reports] == [(9, 0)] * 4
    assert _count(engine, schema.executions) == 36
    assert _count(engine, schema.execution_metrics) == 36
    assert _count(engine, schema.eval_runs) == 4
    rows = _rows(engine)

    gpt5 = rows[("basic_read_test", "gpt-5")]
    assert gpt5["provider"] == "openai"
    assert gpt5["test_name"] == "Basic File Reading Test"
    assert gpt5["execution_time_s"] == 136.11
    assert gpt5["total_tokens"] == 16869
    assert gpt5["input_tokens"] == 8637
    assert gpt5["output_tokens"] == 8232
    assert gpt5["cost_usd"] == 0.173182  # the table's total, although the price list says less
    assert (gpt5["perf_grade"], gpt5["speed_grade"], gpt5["cost_grade"]) == ("A", "F", "F")
    assert gpt5["overall_grade"] == "D"
    assert gpt5["rank"] == 5
    assert gpt5["success"] is True and gpt5["error"] is None
    assert gpt5["prompt"].startswith("Test requiring agents to read the README.md file")
    assert gpt5["response"].startswith("FIRST 10 LINES:\n# Nano Agent\n\nA production-ready")
    assert "<br>" not in gpt5["response"]
    split = compute_costs("gpt-5", input_tokens=8637, output_tokens=8232)
    assert split is not None
    assert gpt5["input_cost_usd"] == split.input_cost_usd
    assert gpt5["output_cost_usd"] == split.output_cost_usd
    assert gpt5["pricing_version"] == PRICING_VERSION

    haiku = rows[("dummy_test", "claude-3-haiku-20240307")]
    assert haiku["provider"] == "anthropic"
    assert haiku["test_name"] == "The Dummy Test"
    grades = (haiku["perf_grade"], haiku["speed_grade"], haiku["cost_grade"])
    assert (*grades, haiku["overall_grade"]) == ("S", "S", "S", "S")
    assert haiku["rank"] == 1
    assert haiku["execution_time_s"] == 0.5
    assert haiku["cost_usd"] == 0.000343
    assert (
        haiku["response"] == '`{"result": "The capital of the United States is Washington, D.C."}`'
    )
    assert as_utc(haiku["started_at"]) == datetime(2025, 8, 10, 0, 1, tzinfo=UTC)

    opus = rows[("dummy_test", "claude-opus-4-1-20250805")]
    assert (opus["input_tokens"], opus["output_tokens"], opus["total_tokens"]) == (1298, 213, 1511)
    assert opus["cost_usd"] == 0.035445
    assert opus["rank"] == 9

    oss = rows[("code_analysis_test", "gpt-oss:120b")]
    assert oss["provider"] == "ollama"
    assert (oss["execution_time_s"], oss["cost_usd"], oss["rank"]) == (182.22, 0.0, 7)

    # ties: "3rd Place" twice in the dummy test, four "1st Place" in the file operations test
    assert rows[("dummy_test", "gpt-oss:20b")]["rank"] == 3
    assert rows[("dummy_test", "gpt-oss:120b")]["rank"] == 3
    firsts = [m for (t, m), r in rows.items() if t == "file_operations_test" and r["rank"] == 1]
    assert sorted(firsts) == sorted(
        ["gpt-5-nano", "gpt-5-mini", "claude-3-haiku-20240307", "gpt-oss:20b"]
    )


def test_importing_the_shared_files_again_adds_nothing(engine: Engine, shared_data: Path) -> None:
    import_paths(engine, _shared(shared_data))
    again = import_paths(engine, _shared(shared_data))
    assert [(r.added, r.present) for r in again] == [(0, 9)] * 4
    assert _count(engine, schema.executions) == 36
    assert _count(engine, schema.eval_runs) == 4


def test_eval_run_and_interactions_are_stored_per_file(engine: Engine, shared_data: Path) -> None:
    import_file(engine, shared_data / "eval_results_1_dummy_test.md")
    with engine.connect() as conn:
        run = conn.execute(select(schema.eval_runs)).one()._mapping
    assert run["test_id"] == "dummy_test"
    assert run["source"] == "eval-markdown:eval_results_1_dummy_test.md"
    row = _rows(engine)[("dummy_test", "gpt-5")]
    assert row["eval_run_id"] == run["id"]
    steps = _interactions(engine, row["id"])
    assert [(s["seq"], s["kind"]) for s in steps] == [(1, "request"), (2, "response")]
    assert steps[0]["arguments"].startswith('Simple test asking "What is the capital')
    assert steps[1]["result"] == row["response"]
    assert steps[1]["duration_s"] == 9.81


# --- our own markdown fixture: quirks ------------------------------------------------------------


def test_markdown_quirks_full_ids_separators_four_decimals_na_and_escaped_pipes(
    engine: Engine,
) -> None:
    report = import_file(engine, FIXTURES / "eval_results_7_quirks_test.md")
    assert (report.added, report.present) == (5, 0)
    rows = _rows(engine)

    opus = rows[("quirks_test", "claude-opus-4-1-20250805")]
    assert opus["provider"] == "anthropic"
    assert opus["execution_time_s"] == 1012.5
    assert (opus["total_tokens"], opus["input_tokens"], opus["output_tokens"]) == (
        12345,
        10000,
        2345,
    )
    assert opus["cost_usd"] == 1.2345
    assert opus["response"] == "Use `grep foo | sort` to filter.\nThen `uniq -c`."
    assert opus["prompt"] == (
        "Ask each agent to list the pipes in a shell command and explain them.\n"
        "Second line of the description."
    )
    assert opus["rank"] == 2

    oss = rows[("quirks_test", "gpt-oss:20b")]
    assert oss["provider"] == "ollama"
    assert oss["response"] == "Two pipes: `a | b | c`"
    assert oss["rank"] == 2  # tie with opus
    assert oss["cost_usd"] == 0.0

    failed = rows[("quirks_test", "gpt-5")]
    assert failed["success"] is False
    assert "N/A" in failed["error"]
    assert failed["response"] is None
    assert failed["execution_time_s"] is None
    assert failed["total_tokens"] is None and failed["cost_usd"] is None
    assert failed["perf_grade"] is None and failed["rank"] is None

    # no cost in the table: the pricing table fills it in; unknown models stay without one
    haiku = rows[("quirks_test", "claude-3-haiku-20240307")]
    expected = compute_costs("claude-3-haiku-20240307", input_tokens=1249, output_tokens=25)
    assert expected is not None
    assert haiku["cost_usd"] == expected.cost_usd
    unknown = rows[("quirks_test", "qwen3:8b")]
    assert unknown["provider"] == "ollama"
    assert unknown["cost_usd"] is None and unknown["pricing_version"] is None
    assert unknown["response"] == "Plain answer with **bold** text."


def test_a_table_row_splits_only_on_unescaped_pipes() -> None:
    assert split_row(r"| m | `a \| b` | c |") == ["m", "`a | b`", "c"]
    assert split_row("| m |  |") == ["m", ""]


def test_markdown_missing_a_table_is_refused_with_file_and_line(engine: Engine) -> None:
    path = FIXTURES / "broken_missing_metrics.md"
    with pytest.raises(ImportFailed, match=r"broken_missing_metrics\.md:18: .*Performance Metrics"):
        import_file(engine, path)
    assert _count(engine, schema.executions) == 0
    assert _count(engine, schema.eval_runs) == 0


def test_metrics_row_for_a_model_without_a_response_is_refused(engine: Engine) -> None:
    with pytest.raises(ImportFailed, match=r"broken_orphan_metrics\.md:20: .*'gpt-5-mini'"):
        import_file(engine, FIXTURES / "broken_orphan_metrics.md")
    assert _count(engine, schema.executions) == 0


def test_markdown_with_an_unknown_grade_or_bad_number_is_refused(tmp_path: Path) -> None:
    good = (FIXTURES / "eval_results_7_quirks_test.md").read_text()
    bad_grade = tmp_path / "bad_grade.md"
    bad_grade.write_text(
        good.replace("| gpt-oss:20b | B | E | S | B |", "| gpt-oss:20b | B | X | S | B |")
    )
    with pytest.raises(ImportFailed, match=r"bad_grade\.md:22: grade 'X' is not one of"):
        parse_file(bad_grade)
    bad_number = tmp_path / "bad_number.md"
    bad_number.write_text(good.replace("| 4.00s |", "| four |"))
    with pytest.raises(ImportFailed, match=r"bad_number\.md:34: execution time 'four'"):
        parse_file(bad_number)


# --- hook logs -----------------------------------------------------------------------------------


def test_hook_log_imports_nano_agent_calls_and_skips_other_tools(engine: Engine) -> None:
    report = import_file(engine, FIXTURES / "post_tool_use.json")
    assert (report.format, report.added, report.present, report.skipped) == ("hook-log", 3, 0, 2)
    rows = _rows(engine)

    mini = rows[(None, "gpt-5-mini")]  # MCP text content
    assert mini["success"] is True
    assert mini["prompt"] == "Create hello.py with a greet() function"
    assert mini["response"] == "Created hello.py with a greet() function."
    assert (mini["session_id"], mini["cwd"], mini["user"]) == (
        "5c1f-aaaa",
        "/home/ann/projects/demo",
        "ann",
    )
    assert (mini["input_tokens"], mini["output_tokens"], mini["cached_tokens"]) == (2600, 500, 1000)
    assert mini["cost_usd"] == 0.0018
    assert mini["cached_savings_usd"] == pytest.approx(1000 * (0.25 - 0.025) / 1e6)
    assert as_utc(mini["started_at"]) == datetime(2025, 8, 12, 9, 30, tzinfo=UTC)
    assert mini["execution_time_s"] == 7.25
    assert mini["source"] == "hook-log:post_tool_use.json"

    opus = rows[(None, "claude-opus-4-1-20250805")]  # response object, no cost: pricing table
    assert (opus["provider"], opus["user"], opus["cwd"]) == ("anthropic", "bob", "/srv/work/api")
    assert opus["cost_usd"] == 0.035445

    failed = rows[(None, "gpt-oss:20b")]  # {"content": [...]} wrapper around a failure
    assert failed["success"] is False
    assert failed["error"] == "Agent SDK execution failed: Connection refused"
    assert failed["response"] is None


def test_hook_log_imported_twice_adds_nothing(engine: Engine) -> None:
    import_file(engine, FIXTURES / "post_tool_use.json")
    again = import_file(engine, FIXTURES / "post_tool_use.json")
    assert (again.added, again.present) == (0, 3)
    assert _count(engine, schema.executions) == 3


def test_hook_log_with_bad_json_is_refused_with_its_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "post_tool_use.json"
    text = (FIXTURES / "post_tool_use.json").read_text()
    lines = text.splitlines()
    lines[2] = lines[2].replace('"session_id":', '"session_id"')
    path.write_text("\n".join(lines))
    with pytest.raises(ImportFailed, match=r"post_tool_use\.json:3: invalid JSON"):
        import_file(engine, path)
    assert _count(engine, schema.executions) == 0


def test_hook_event_with_an_unreadable_response_is_refused_naming_its_line(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "hooks.json"
    path.write_text(
        '[\n  {"tool_name": "Read", "tool_response": {}},\n'
        '  {"tool_name": "mcp__nano-agent__prompt_nano_agent",\n'
        '   "tool_input": {"model": "gpt-5"}, "tool_response": {"content": []}}\n]\n'
    )
    with pytest.raises(ImportFailed, match=r"hooks\.json:3: tool_response holds no text"):
        import_file(engine, path)
    assert _count(engine, schema.executions) == 0


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_with_and_without_request_fields_and_timestamps(engine: Engine) -> None:
    report = import_file(engine, FIXTURES / "responses.jsonl")
    assert (report.format, report.added, report.present) == ("jsonl", 3, 0)
    rows = _rows(engine)

    full = rows[(None, "gpt-5")]
    assert full["prompt"] == "List the files in src/ | sort them"
    assert as_utc(full["started_at"]) == datetime(2025, 8, 11, 14, 5, tzinfo=UTC)
    assert (full["total_tokens"], full["reasoning_tokens"], full["cached_tokens"]) == (
        16869,
        6000,
        0,
    )
    assert full["cost_usd"] == 0.173182
    steps = _interactions(engine, full["id"])
    assert [(s["seq"], s["kind"], s["tool_name"]) for s in steps] == [
        (1, "request", None),
        (2, "tool_call", "list_directory"),
        (3, "tool_call", "read_file"),
        (4, "response", None),
    ]
    assert steps[1]["arguments"] == '{"directory_path": "src"}'
    assert steps[1]["is_error"] is False
    assert (steps[2]["is_error"], steps[2]["result"]) == (True, "File not found: src/missing.py")
    assert steps[3]["result"] == "src/a.py\nsrc/b.py"

    bare = rows[(None, "claude-3-haiku-20240307")]  # line 2: no request, no timestamp, no cost
    assert bare["prompt"] is None
    assert as_utc(bare["started_at"]) == datetime(2025, 8, 10, 0, 0, 2, tzinfo=UTC)
    assert bare["cost_usd"] == 0.000343  # from the pricing table
    assert bare["source"] == "jsonl:responses.jsonl"

    failed = rows[(None, "gpt-5-nano")]
    assert failed["success"] is False
    assert failed["error"] == "Agent SDK execution failed: rate limited"
    assert failed["total_tokens"] is None and failed["cost_usd"] is None


def test_jsonl_reimport_adds_only_new_lines(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    lines = (FIXTURES / "responses.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    assert import_file(engine, path).added == 2
    path.write_text("\n".join(lines) + "\n")
    report = import_file(engine, path)
    assert (report.added, report.present) == (1, 2)
    assert _count(engine, schema.executions) == 3


def test_jsonl_with_bad_json_on_line_3_is_refused_and_stores_nothing(engine: Engine) -> None:
    with pytest.raises(ImportFailed, match=r"broken_line3\.jsonl:3: invalid JSON"):
        import_file(engine, FIXTURES / "broken_line3.jsonl")
    assert _count(engine, schema.executions) == 0
    assert _count(engine, schema.interactions) == 0


def test_jsonl_line_that_is_not_a_response_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('{"success": true, "result": "ok"}\n\n[1, 2]\n')
    with pytest.raises(ImportFailed, match=r"odd\.jsonl:3: expected a JSON object"):
        parse_file(path)
    path.write_text('{"result": "ok"}\n')
    with pytest.raises(ImportFailed, match=r"odd\.jsonl:1: .*'success'"):
        parse_file(path)
    path.write_text('{"success": true, "timestamp": "yesterday"}\n')
    with pytest.raises(ImportFailed, match=r"odd\.jsonl:1: timestamp 'yesterday'"):
        parse_file(path)


def test_unrecognised_or_unreadable_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    with pytest.raises(ImportFailed, match=r"notes\.txt:1: unrecognised format"):
        parse_file(text)
    binary = tmp_path / "runs.jsonl"
    binary.write_bytes(b'{"success": true}\n\xff\xfe\n')
    with pytest.raises(ImportFailed, match=r"runs\.jsonl:2: not UTF-8"):
        parse_file(binary)
    with pytest.raises(ImportFailed, match=r"missing\.md: cannot read"):
        parse_file(tmp_path / "missing.md")


def test_a_copy_of_an_eval_file_adds_nothing_but_an_edited_one_is_a_new_run(
    engine: Engine, tmp_path: Path
) -> None:
    original = FIXTURES / "eval_results_7_quirks_test.md"
    import_file(engine, original)
    copy = tmp_path / "copy_of_quirks.md"
    copy.write_text(original.read_text())
    assert (import_file(engine, copy).added, import_file(engine, copy).present) == (0, 5)
    edited = tmp_path / "eval_results_7_quirks_test.md"
    edited.write_text(original.read_text().replace("| 0.50s | 1274 |", "| 0.60s | 1274 |"))
    assert import_file(engine, edited).added == 5
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(schema.eval_runs)).scalar_one()
    assert runs == 2


def test_concurrent_imports_of_one_file_store_it_once(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = FIXTURES / "eval_results_7_quirks_test.md"
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda _: import_file(engine, path), range(4)))
    assert sum(r.added for r in reports) == 5
    assert all(r.added + r.present == 5 for r in reports)
    assert _count(engine, schema.executions) == 5
    assert _count(engine, schema.eval_runs) == 1
