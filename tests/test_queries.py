"""Counts, aggregates, medians, histograms and previews are computed in SQL on both backends."""

from __future__ import annotations

import pytest
from conftest import TEST_SECRET
from sqlalchemy import Engine
from ui_data import ROWS, SECRET_PROMPT, insert_rows

from nano_export import queries
from nano_export.errors import InvalidFilter
from nano_export.models import FilterSpec

DS = "evaluation-results"


@pytest.fixture
def data(engine: Engine) -> Engine:
    insert_rows(engine)
    return engine


def test_summary_counts_success_cost_and_even_median(data: Engine) -> None:
    s = queries.summary(data, dataset=DS, spec=FilterSpec())
    assert s.rows == 8
    assert s.successes == 6
    assert s.success_rate == pytest.approx(0.75)
    assert s.total_cost == pytest.approx(sum(r[4] for r in ROWS))
    # latencies 1,2,3,4,5,6,7,10 → median (4+5)/2
    assert s.median_latency == pytest.approx(4.5)


def test_summary_follows_the_filter_spec_and_odd_median(data: Engine) -> None:
    spec = FilterSpec(provider=("openai",), where="execution_time_s > 1")
    s = queries.summary(data, dataset=DS, spec=spec)
    assert s.rows == 3
    assert s.successes == 2
    assert s.median_latency == pytest.approx(3.0)
    assert queries.count_rows(data, dataset=DS, spec=spec) == 3


def test_summary_of_an_empty_selection(data: Engine) -> None:
    s = queries.summary(data, dataset=DS, spec=FilterSpec(provider=("nobody",)))
    assert (s.rows, s.success_rate, s.median_latency) == (0, None, None)


def test_by_model_groups_in_sql(data: Engine) -> None:
    df = queries.by_model(data, dataset=DS, spec=FilterSpec())
    mini = df[df["model"] == "gpt-5-mini"].iloc[0]
    assert mini["provider"] == "openai"
    assert mini["runs"] == 3
    assert mini["success_rate"] == pytest.approx(2 / 3)
    assert mini["mean_latency_s"] == pytest.approx(2.0)
    assert mini["cost_per_run_usd"] == pytest.approx(0.02)
    assert set(df["model"]) == {r[1] for r in ROWS}


def test_latency_histogram_puts_every_run_in_one_bucket(data: Engine) -> None:
    df = queries.latency_histogram(data, dataset=DS, spec=FilterSpec(), bins=9)
    assert df["runs"].sum() == len(ROWS)
    # range 1..10 in 9 buckets of width 1: the maximum lands in the last bucket
    assert df["bucket_start"].min() == pytest.approx(1.0)
    assert df["bucket_end"].max() == pytest.approx(10.0)
    ollama = df[df["model"] == "gpt-oss:20b"]
    assert list(ollama["bucket_start"]) == pytest.approx([7.0, 9.0])


def test_runs_over_time_by_day_and_by_month(data: Engine) -> None:
    daily = queries.runs_over_time(data, dataset=DS, spec=FilterSpec(), grain="day")
    assert len(daily) == 8 and daily["runs"].sum() == 8
    assert str(daily["period"].iloc[0].date()) == "2025-08-01"
    monthly = queries.runs_over_time(data, dataset=DS, spec=FilterSpec(), grain="month")
    assert monthly.groupby("provider")["runs"].sum().to_dict() == {
        "anthropic": 2,
        "ollama": 2,
        "openai": 4,
    }
    weekly = queries.runs_over_time(data, dataset=DS, spec=FilterSpec(), grain="week")
    # 2025-08-01 is a Friday: its week starts Monday 2025-07-28
    assert str(weekly["period"].min().date()) == "2025-07-28"
    assert weekly["runs"].sum() == 8


def test_preview_is_redacted_by_the_privacy_policy(data: Engine) -> None:
    full = queries.preview(
        data, dataset=DS, spec=FilterSpec(), level="full", secret=TEST_SECRET, limit=3
    )
    assert len(full) == 3
    assert "sk-proj-" not in full["prompt"].iloc[0]
    assert "[REDACTED]" in full["prompt"].iloc[0]
    assert "bob@example.com" in full["prompt"].iloc[0]
    standard = queries.preview(
        data, dataset=DS, spec=FilterSpec(), level="standard", secret=TEST_SECRET, limit=3
    )
    assert "bob@example.com" not in standard["prompt"].iloc[0]
    public = queries.preview(
        data, dataset=DS, spec=FilterSpec(), level="public", secret=TEST_SECRET, limit=3
    )
    assert "prompt" not in public.columns and "user" in public.columns
    assert public["user"].iloc[0] != "alice"
    assert SECRET_PROMPT not in public.to_csv()


def test_estimate_counts_rows_and_approximates_size(data: Engine) -> None:
    est = queries.estimate(
        data, dataset=DS, spec=FilterSpec(success=True), level="standard", secret=TEST_SECRET
    )
    assert est.rows == 6
    assert 6 * 100 < est.approx_bytes < 6 * 2000
    assert queries.estimate(data, dataset=DS, spec=FilterSpec(model=("x",))).approx_bytes == 0


def test_invalid_where_raises_before_querying(data: Engine) -> None:
    with pytest.raises(InvalidFilter, match="nope"):
        queries.summary(data, dataset=DS, spec=FilterSpec(where="nope = 1"))


def test_filter_choices_come_from_the_data(data: Engine) -> None:
    assert queries.distinct_values(data, field="provider") == ["anthropic", "ollama", "openai"]
    assert queries.distinct_values(data, field="test") == ["t0", "t1", "t2"]
    assert queries.models_by_provider(data)["openai"] == ["gpt-5", "gpt-5-mini"]


def test_performance_metrics_dataset_has_the_same_aggregates(data: Engine) -> None:
    s = queries.summary(data, dataset="performance-metrics", spec=FilterSpec(success=False))
    assert (s.rows, s.successes) == (2, 0)
    assert s.total_cost == pytest.approx(0.63)
