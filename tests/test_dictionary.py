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


def test_cli_help_openapi_and_readme_draw_on_the_same_text() -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from nano_export.api_docs import openapi_document
    from nano_export.cli import main

    rank = DATASETS["evaluation-results"].column("rank")
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert rank.description in help_text and rank.meaning in help_text
    doc = openapi_document()
    assert rank.meaning in doc["info"]["description"]
    assert {"/api/views", "/api/views/{name}"} <= set(doc["paths"])
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert dictionary_markdown() in readme
