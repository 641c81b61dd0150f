"""The data dictionary: every column of every dataset described once, next to its definition."""

from __future__ import annotations

from nano_export.datasets import DATASETS, dictionary_markdown


def test_every_column_of_every_dataset_has_a_description() -> None:
    for ds in DATASETS.values():
        for col in ds.columns:
            assert col.description.endswith("."), (ds.name, col.name)
            assert col.description in col.help


def test_grades_and_rank_say_what_their_values_mean() -> None:
    ds = DATASETS["evaluation-results"]
    for name in ("perf_grade", "speed_grade", "cost_grade", "overall_grade"):
        assert "S (best)" in ds.column(name).meaning and "F (worst)" in ds.column(name).meaning
    assert "1 is best" in ds.column("rank").meaning


def test_units_are_stated_for_measures() -> None:
    ds = DATASETS["performance-metrics"]
    assert ds.column("execution_time_s").unit == "seconds"
    assert ds.column("cost_usd").unit == "USD"
    assert ds.column("input_tokens").unit == "tokens"
    assert "UTC" in ds.column("started_at").unit
    assert DATASETS["agent-interactions"].column("duration_s").unit == "seconds"


def test_the_markdown_has_a_row_per_column() -> None:
    text = dictionary_markdown()
    for ds in DATASETS.values():
        assert f"### `{ds.name}`" in text
        for col in ds.columns:
            assert f"| `{col.name}` | {col.kind} |" in text
