"""A ``where`` on free text sees only what the file shows: it cannot probe behind a mask.

Credentials are masked at every level (and emails and home-directory names at ``standard``). If a
condition on ``prompt`` ran on the stored text, counting rows would reveal a masked key one guessed
character at a time. So a free-text condition never matches text that holds something a level
masks: positive conditions are false there and negated ones true, whatever the hidden text is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import PLANTED, SECRET, insert_executions

from nano_export import queries
from nano_export.exporter import count_rows, plan_export, run_export
from nano_export.models import ExportRequest, FilterSpec

KEY = "k" * 40


def _count(engine, where: str) -> int:  # type: ignore[no-untyped-def]
    return queries.count_rows(engine, dataset="evaluation-results", spec=FilterSpec(where=where))


@pytest.mark.parametrize(
    "probe",
    [
        f"prompt ~ '{SECRET[:12]}'",
        f"prompt ~ '{SECRET[:12]}X'",  # a wrong guess gives the same answer as a right one
        "prompt ~ 'bob@example'",
        "prompt ~ '/home/bob'",
        f"prompt = '{PLANTED}'",
        f"prompt in ('{PLANTED}', 'x')",
        "prompt ~ 'sk-proj' and execution_id = 10",
    ],
)
def test_a_free_text_condition_never_matches_masked_text(engine, probe: str) -> None:
    insert_executions(engine, 100)  # every 10th prompt holds a key, an email and a home dir
    assert _count(engine, probe) == 0
    assert _count(engine, f"not ({probe})") == 100


def test_free_text_conditions_still_find_ordinary_text_exactly(engine) -> None:
    insert_executions(engine, 100)
    assert _count(engine, "prompt ~ 'what is'") == 90
    assert _count(engine, "prompt ~ 'what is 1[0-9],'") == 9  # 11-19; 10 holds the key
    assert _count(engine, "response ~ 'second line'") == 100
    assert _count(engine, "prompt !~ 'what is'") == 10
    assert _count(engine, "prompt = '=SUM(A7) what is 7, \"quoted\"?'") == 1
    assert _count(engine, "prompt is not null") == 100  # presence is not masked content


@pytest.mark.parametrize("level", ["standard", "full"])
def test_the_file_the_count_and_the_dry_run_agree_on_a_free_text_probe(
    engine, tmp_path: Path, level: str
) -> None:
    insert_executions(engine, 100)
    spec = FilterSpec(where=f"prompt ~ '{SECRET[:10]}' or prompt ~ 'what is 2'")
    plan = plan_export(ExportRequest(dataset="evaluation-results", privacy=level, filters=spec))
    with engine.connect() as conn:
        counted = count_rows(conn, plan)
    out = tmp_path / "probe.csv"
    result = run_export(engine, plan, out_path=out, secret=KEY, chunk_rows=7)
    assert counted == result.rows == 10  # 2, 21, 22, …, 29 (20 holds the key)
    assert SECRET[:10].encode() not in out.read_bytes()
