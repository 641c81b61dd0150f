"""Failed runs in nano-agent evaluation tables: tokens and cost ``N/A`` mean the run failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from nano_export import schema
from nano_export.importers import import_paths

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
