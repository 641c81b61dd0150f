"""Failed runs in nano-agent evaluation tables: tokens and cost ``N/A`` mean the run failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from nano_export import schema
from nano_export.importers import import_file, import_paths
from nano_export.importers.eval_markdown import says_it_failed
from nano_export.pricing import PRICING_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "importers" / "eval_results_8_failed_runs_test.md"
NO_USAGE = "no token usage or cost reported (N/A)"

# (test_id, model, success, error, execution_time_s, input, output, total tokens, cost_usd) of the
# 36 executions in the real nano-agent files, as imported before failed runs were recognised. None
# of them has N/A metrics, so recognising failed runs changes none of them.
SHARED_EXECUTIONS: list[tuple[str, str, bool, str | None, float, int, int, int, float]] = [
    ("dummy_test", "gpt-5-nano", True, None, 3.03, 602, 399, 1001, 0.000343),
    ("dummy_test", "gpt-5-mini", True, None, 5.36, 602, 488, 1090, 0.002023),
    ("dummy_test", "gpt-5", True, None, 9.81, 602, 533, 1135, 0.011203),
    ("dummy_test", "claude-opus-4-1-20250805", True, None, 5.9, 1298, 213, 1511, 0.035445),
    ("dummy_test", "claude-opus-4-20250514", True, None, 2.63, 1298, 21, 1319, 0.021045),
    ("dummy_test", "claude-sonnet-4-20250514", True, None, 2.32, 1298, 70, 1368, 0.004944),
    ("dummy_test", "claude-3-haiku-20240307", True, None, 0.5, 1249, 25, 1274, 0.000343),
    ("dummy_test", "gpt-oss:20b", True, None, 12.85, 651, 457, 1108, 0.0),
    ("dummy_test", "gpt-oss:120b", True, None, 33.15, 651, 237, 888, 0.0),
    ("basic_read_test", "gpt-5-nano", True, None, 15.15, 8647, 3203, 11850, 0.002891),
    ("basic_read_test", "gpt-5-mini", True, None, 17.29, 8104, 1448, 9552, 0.0073),
    ("basic_read_test", "gpt-5", True, None, 136.11, 8637, 8232, 16869, 0.173182),
    ("basic_read_test", "claude-opus-4-1-20250805", True, None, 9.21, 9483, 247, 9730, 0.16077),
    ("basic_read_test", "claude-opus-4-20250514", True, None, 13.83, 9483, 249, 9732, 0.16092),
    ("basic_read_test", "claude-sonnet-4-20250514", True, None, 5.73, 9491, 253, 9744, 0.032268),
    ("basic_read_test", "claude-3-haiku-20240307", True, None, 3.25, 9371, 299, 9670, 0.002717),
    ("basic_read_test", "gpt-oss:20b", True, None, 27.8, 7357, 231, 7588, 0.0),
    ("basic_read_test", "gpt-oss:120b", True, None, 75.56, 7303, 154, 7457, 0.0),
    ("file_operations_test", "gpt-5-nano", True, None, 34.81, 28059, 2470, 30529, 0.002482),
    ("file_operations_test", "gpt-5-mini", True, None, 14.43, 9868, 923, 10791, 0.004382),
    ("file_operations_test", "gpt-5", True, None, 26.69, 17973, 1720, 19693, 0.04006),
    (
        "file_operations_test",
        "claude-opus-4-1-20250805",
        True,
        None,
        23.67,
        14607,
        828,
        15435,
        0.281205,
    ),
    (
        "file_operations_test",
        "claude-opus-4-20250514",
        True,
        None,
        32.32,
        14446,
        733,
        15179,
        0.271665,
    ),
    (
        "file_operations_test",
        "claude-sonnet-4-20250514",
        True,
        None,
        13.03,
        14442,
        769,
        15211,
        0.054861,
    ),
    (
        "file_operations_test",
        "claude-3-haiku-20240307",
        True,
        None,
        5.6,
        13880,
        527,
        14407,
        0.004129,
    ),
    ("file_operations_test", "gpt-oss:20b", True, None, 29.55, 10764, 680, 11444, 0.0),
    ("file_operations_test", "gpt-oss:120b", True, None, 69.76, 13256, 1170, 14426, 0.0),
    ("code_analysis_test", "gpt-5-nano", True, None, 30.24, 14614, 5992, 20606, 0.004233),
    ("code_analysis_test", "gpt-5-mini", True, None, 46.32, 22418, 3211, 25629, 0.011785),
    ("code_analysis_test", "gpt-5", True, None, 48.78, 28510, 4113, 32623, 0.083241),
    (
        "code_analysis_test",
        "claude-opus-4-1-20250805",
        True,
        None,
        66.27,
        13485,
        3056,
        16541,
        0.431475,
    ),
    (
        "code_analysis_test",
        "claude-opus-4-20250514",
        True,
        None,
        119.7,
        13067,
        2679,
        15746,
        0.39693,
    ),
    (
        "code_analysis_test",
        "claude-sonnet-4-20250514",
        True,
        None,
        30.43,
        12871,
        2577,
        15448,
        0.077268,
    ),
    (
        "code_analysis_test",
        "claude-3-haiku-20240307",
        True,
        None,
        19.71,
        27143,
        2312,
        29455,
        0.009676,
    ),
    ("code_analysis_test", "gpt-oss:20b", True, None, 89.1, 8792, 1951, 10743, 0.0),
    ("code_analysis_test", "gpt-oss:120b", True, None, 182.22, 14861, 2922, 17783, 0.0),
]


def _executions(engine: Engine) -> dict[tuple[str | None, str], dict[str, Any]]:
    e, m = schema.executions, schema.execution_metrics
    query = select(e, *[c for c in m.c if c.name != "execution_id"]).join(
        m, m.c.execution_id == e.c.id
    )
    with engine.connect() as conn:
        return {(r.test_id, r.model): dict(r._mapping) for r in conn.execute(query)}


def _response_step(engine: Engine, execution_id: int) -> dict[str, Any]:
    t = schema.interactions
    query = select(t).where(t.c.execution_id == execution_id, t.c.kind == "response")
    with engine.connect() as conn:
        return dict(conn.execute(query).one()._mapping)


def test_the_36_shared_executions_keep_their_values_cell_by_cell(
    engine: Engine, shared_data: Path
) -> None:
    import_paths(engine, sorted(shared_data.glob("eval_results_*.md")))
    rows = _executions(engine)
    assert len(rows) == len(SHARED_EXECUTIONS) == 36
    for test_id, model, success, error, seconds, inp, out, total, cost in SHARED_EXECUTIONS:
        row = rows[(test_id, model)]
        cells = (
            row["success"],
            row["error"],
            row["execution_time_s"],
            row["input_tokens"],
            row["output_tokens"],
            row["total_tokens"],
            row["cached_tokens"],
            row["reasoning_tokens"],
            row["cost_usd"],
        )
        assert cells == (success, error, seconds, inp, out, total, None, None, cost), (
            test_id,
            model,
        )


def test_a_model_with_na_tokens_and_cost_but_a_time_imports_as_failed_cell_by_cell(
    engine: Engine,
) -> None:
    report = import_file(engine, FIXTURE)
    assert (report.added, report.present) == (4, 0)
    rows = _executions(engine)
    no_metrics = {
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "input_cost_usd": None,
        "output_cost_usd": None,
        "cached_savings_usd": None,
        "cost_usd": None,
        "pricing_version": None,
    }
    said_failure = (
        "Error: the agent failed to finish the task.\n"
        "Max turns (20) exceeded while running the tests."
    )
    expected: dict[str, dict[str, Any]] = {
        "gpt-5-mini": {
            "provider": "openai",
            "success": True,
            "error": None,
            "execution_time_s": 14.43,
            "response": "Refactored `utils.py` and all 12 tests pass.",
            "grades": ("A", "B", "A", "A"),
            "rank": 1,
            "input_tokens": 9868,
            "output_tokens": 923,
            "total_tokens": 10791,
            "cached_tokens": None,
            "reasoning_tokens": None,
            "input_cost_usd": 0.002467,
            "output_cost_usd": 0.001846,
            "cached_savings_usd": None,
            "cost_usd": 0.004382,
            "pricing_version": PRICING_VERSION,
        },
        # the model's own words say it failed: they are the error
        "gpt-5": {
            "provider": "openai",
            "success": False,
            "error": said_failure,
            "execution_time_s": 300.0,
            "response": said_failure,
            "grades": ("F", "F", None, "F"),
            "rank": 3,
            **no_metrics,
        },
        # the response does not say it failed: a short reason is the error, the response stays
        "claude-sonnet-4-20250514": {
            "provider": "anthropic",
            "success": False,
            "error": NO_USAGE,
            "execution_time_s": 42.1,
            "response": "Refactored the module as requested.",
            "grades": ("D", "C", None, "D"),
            "rank": 2,
            **no_metrics,
        },
        "gpt-oss:20b": {
            "provider": "ollama",
            "success": False,
            "error": "no response in the evaluation table (N/A)",
            "execution_time_s": 12.0,
            "response": None,
            "grades": (None, None, None, None),
            "rank": None,
            **no_metrics,
        },
    }
    assert sorted(m for _, m in rows) == sorted(expected)
    for model, want in expected.items():
        row = rows[("failed_runs_test", model)]
        got = {k: row[k] for k in want if k != "grades"}
        got["grades"] = (
            row["perf_grade"],
            row["speed_grade"],
            row["cost_grade"],
            row["overall_grade"],
        )
        assert got == want, model
        step = _response_step(engine, row["id"])
        assert step["is_error"] is (not want["success"])
        assert step["result"] == (want["error"] or want["response"])
        assert step["duration_s"] == want["execution_time_s"]


def test_the_failed_runs_lower_the_success_rate_as_the_table_says(engine: Engine) -> None:
    import_file(engine, FIXTURE)
    successes = [r["success"] for r in _executions(engine).values()]
    assert successes.count(True) == 1 and successes.count(False) == 3


def test_cost_alone_missing_is_not_a_failed_run(engine: Engine, tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace(
        "| claude-sonnet-4 | 42.10s | N/A | N/A | N/A | N/A |",
        "| claude-sonnet-4 | 42.10s | 1368 | N/A | 1298 | 70 |",
    )
    path = tmp_path / "eval_results_8_failed_runs_test.md"
    path.write_text(text)
    import_file(engine, path)
    sonnet = _executions(engine)[("failed_runs_test", "claude-sonnet-4-20250514")]
    assert (sonnet["success"], sonnet["error"]) == (True, None)
    assert sonnet["total_tokens"] == 1368
    assert sonnet["cost_usd"] is not None  # priced from the table of prices


def test_importing_the_failed_runs_file_twice_adds_nothing(engine: Engine) -> None:
    import_file(engine, FIXTURE)
    again = import_file(engine, FIXTURE)
    assert (again.added, again.present) == (0, 4)
    assert len(_executions(engine)) == 4


def test_reimport_keeps_rows_stored_under_the_old_interpretation(engine: Engine) -> None:
    """A file is identified by its content: importing it again never rewrites stored rows.

    A database that imported a file before failed runs were recognised keeps those runs as
    succeeded; the file must be removed from the database and imported again to change them.
    """
    import_file(engine, FIXTURE)
    e = schema.executions
    with engine.begin() as conn:  # what the previous version stored for the failed run
        conn.execute(update(e).where(e.c.model == "gpt-5").values(success=True, error=None))
    again = import_file(engine, FIXTURE)
    assert (again.added, again.present) == (0, 4)
    gpt5 = _executions(engine)[("failed_runs_test", "gpt-5")]
    assert (gpt5["success"], gpt5["error"]) == (True, None)


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        ("Error: the agent failed to finish the task.", True),
        ("Agent execution failed: rate limit reached", True),
        ("Request timed out after 300 seconds", True),
        ("I was unable to read the file.", True),
        ("Could not connect to the model provider.", True),
        ("I couldn’t finish: the tool call timed-out.", True),
        ("Exception: ConnectionResetError", True),
        ("Refactored the module as requested.", False),
        ("Successfully completed all 4 tasks.", False),
        ('`{"answer":"Washington, D.C."}`', False),
    ],
)
def test_says_it_failed_reads_the_models_own_words(response: str, failed: bool) -> None:
    assert says_it_failed(response) is failed
