"""Counts, aggregates, medians, histograms and previews are computed in SQL on both backends."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import TEST_SECRET
from sqlalchemy import Engine, inspect, text
from ui_data import ROWS, SECRET_PROMPT, insert_rows

from nano_export import filters, jobs, queries, schema
from nano_export.datasets import get_dataset
from nano_export.errors import InvalidFilter, QueryTimeout
from nano_export.models import ExportRequest, FilterSpec
from nano_export.notebook import Client
from nano_export.queries import Grain
from nano_export.schema import execution_metrics, executions, interactions
from nano_export.settings import Settings

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


# ---- every aggregate equals a plain computation over the rows the export would select ----------

SPECS = {
    "everything": FilterSpec(),
    "providers and success": FilterSpec(provider=("openai", "anthropic"), success=True),
    "where on a metrics column": FilterSpec(where="cost_usd > 0.05"),
    "where on a text column": FilterSpec(where="response ~ 'Washington'"),
    "null metrics or fast": FilterSpec(where="cost_usd is null or execution_time_s < 3"),
    "dates and tests": FilterSpec(since=date(2025, 9, 1), until=date(2025, 12, 31), test=("t1",)),
    "nothing": FilterSpec(model=("no-such-model",)),
}


def _insert_varied(engine: Engine, n: int = 90) -> None:
    """``n`` executions over ~400 days with NULL latencies, NULL costs and missing metrics rows."""
    rng = random.Random(7)
    models = [
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("anthropic", "claude-opus-4-1-20250805"),
        ("ollama", "gpt-oss:20b"),
    ]
    start = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for k in range(1, n + 1):
            provider, model = rng.choice(models)
            latency = None if k % 11 == 0 else round(rng.uniform(0.5, 40.0), 3)
            conn.execute(
                executions.insert().values(
                    id=k,
                    source_key=f"varied-{k}",
                    test_id=f"t{k % 3}",
                    test_name=f"Test {k % 3}",
                    provider=provider,
                    model=model,
                    # late-evening times: a day boundary in UTC is not one in another zone
                    started_at=start + timedelta(days=rng.randint(0, 400), hours=23, minutes=k),
                    success=rng.random() < 0.7,
                    execution_time_s=latency,
                    response="The capital is Washington" if k % 4 else "Paris",
                    source="varied",
                )
            )
            if k % 13 == 0:
                continue  # no metrics row at all: the LEFT JOIN must keep the execution
            cost = None if k % 7 == 0 else round(rng.uniform(0.0, 0.2), 6)
            conn.execute(
                execution_metrics.insert().values(
                    execution_id=k, input_tokens=10, output_tokens=5, total_tokens=15, cost_usd=cost
                )
            )
            conn.execute(
                interactions.insert().values(
                    execution_id=k,
                    seq=1,
                    kind="request",
                    duration_s=None if k % 5 == 0 else k / 10,
                    started_at=start + timedelta(days=k),
                )
            )


@pytest.fixture
def varied(engine: Engine) -> Engine:
    _insert_varied(engine)
    return engine


def _selected(engine: Engine, dataset: str, spec: FilterSpec) -> pd.DataFrame:
    """The rows an export of ``spec`` reads, as a DataFrame (the reference for every figure)."""
    ds = get_dataset(dataset)
    with engine.connect() as conn:
        result = conn.execute(filters.apply_filters(ds.select(), spec, ds))
        df = pd.DataFrame(result.all(), columns=list(result.keys()))
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    return df


def _period(started: pd.Series, grain: str) -> pd.Series:
    day = started.dt.tz_localize(None).dt.normalize()
    if grain == "week":
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    if grain == "month":
        return day - pd.to_timedelta(day.dt.day - 1, unit="D")
    return day


def _reference(df: pd.DataFrame, lat_col: str, bins: int, grain: str) -> dict[str, object]:
    lat = pd.to_numeric(df[lat_col], errors="coerce")
    out: dict[str, object] = {"rows": len(df), "median": None if lat.isna().all() else lat.median()}
    if "success" in df:
        out["successes"] = int(df["success"].astype(bool).sum())
    if "cost_usd" in df:
        cost = pd.to_numeric(df["cost_usd"], errors="coerce")
        out["total_cost"] = None if cost.isna().all() else cost.sum()
    per_model = df.assign(lat=lat).groupby(["provider", "model"])
    out["by_model"] = {
        key: (len(g), g["lat"].mean())
        for key, g in per_model  # runs, mean latency
    }
    known = lat.dropna()
    hist: dict[tuple[str, int], int] = {}
    if len(known):
        lo, hi = known.min(), known.max()
        width = (hi - lo) / bins if hi > lo else 1.0
        for model, value in zip(df["model"][known.index], known, strict=True):
            b = min(int((value - lo) // width), bins - 1)
            hist[(model, b)] = hist.get((model, b), 0) + 1
        out["lo"], out["width"] = lo, width
    out["hist"] = hist
    periods = _period(df["started_at"], grain)
    out["over_time"] = df.groupby([periods, df["provider"]]).size().to_dict()
    return out


@pytest.mark.parametrize("grain", ["day", "week", "month"])
@pytest.mark.parametrize("name", list(SPECS))
def test_overview_equals_a_plain_computation_over_the_exported_rows(
    varied: Engine, name: str, grain: Grain
) -> None:
    spec, bins = SPECS[name], 9
    ref = _reference(_selected(varied, DS, spec), "execution_time_s", bins, grain)
    got = queries.overview(varied, dataset=DS, spec=spec, bins=bins, grain=grain)

    s = got.summary
    assert s.rows == ref["rows"] == queries.count_rows(varied, dataset=DS, spec=spec)
    assert s.successes == ref["successes"]
    assert s.total_cost == pytest.approx(ref["total_cost"])
    assert s.median_latency == pytest.approx(ref["median"])
    assert s.median_latency == pytest.approx(queries.median_latency(varied, dataset=DS, spec=spec))

    by_model = {
        (r.provider, r.model): (r.runs, r.mean_latency_s) for r in got.by_model.itertuples()
    }
    assert by_model.keys() == ref["by_model"].keys()  # type: ignore[attr-defined]
    for key, (runs, mean) in ref["by_model"].items():  # type: ignore[attr-defined]
        assert by_model[key][0] == runs
        assert by_model[key][1] == pytest.approx(mean, nan_ok=True)
    if len(got.by_model):
        df = _selected(varied, DS, spec)
        first = got.by_model.iloc[0]
        rows = df[(df["provider"] == first["provider"]) & (df["model"] == first["model"])]
        assert first["successes"] == rows["success"].astype(bool).sum()
        assert first["total_cost_usd"] == pytest.approx(
            rows["cost_usd"].astype(float).sum(min_count=1), nan_ok=True
        )

    hist = got.latency_histogram
    got_hist = {
        (r.model, round((r.bucket_start - ref["lo"]) / ref["width"])): r.runs  # type: ignore[operator]
        for r in hist.itertuples()
    }
    assert got_hist == ref["hist"]
    if len(hist):
        assert hist["bucket_end"].max() == pytest.approx(ref["lo"] + bins * ref["width"])  # type: ignore[operator]

    over = got.runs_over_time
    got_over = {(r.period, r.provider): r.runs for r in over.itertuples()}
    assert got_over == ref["over_time"]


@pytest.mark.parametrize("name", ["everything", "where on a metrics column", "dates and tests"])
def test_single_aggregate_functions_match_the_overview(varied: Engine, name: str) -> None:
    spec = SPECS[name]
    whole = queries.overview(varied, dataset=DS, spec=spec)
    assert queries.summary(varied, dataset=DS, spec=spec) == whole.summary
    pd.testing.assert_frame_equal(queries.by_model(varied, dataset=DS, spec=spec), whole.by_model)
    pd.testing.assert_frame_equal(
        queries.runs_over_time(varied, dataset=DS, spec=spec), whole.runs_over_time
    )


def test_runs_over_time_picks_the_grain_from_the_span(varied: Engine) -> None:
    # ~400 days of data: weeks; a 100-day window: days
    weekly = queries.runs_over_time(varied, dataset=DS, spec=FilterSpec())
    assert set(weekly["period"].dt.day_of_week) == {0}
    short = FilterSpec(since=date(2025, 4, 1), until=date(2025, 7, 1))
    daily = queries.runs_over_time(varied, dataset=DS, spec=short)
    assert daily["runs"].sum() == queries.count_rows(varied, dataset=DS, spec=short)
    assert len(set(daily["period"].dt.day_of_week)) > 1


@pytest.mark.parametrize("dataset", ["performance-metrics", "agent-interactions"])
def test_overview_of_the_other_datasets_equals_a_plain_computation(
    varied: Engine, dataset: str
) -> None:
    spec = FilterSpec(provider=("openai", "ollama"))
    lat_col = "duration_s" if dataset == "agent-interactions" else "execution_time_s"
    df = _selected(varied, dataset, spec)
    ref = _reference(df, lat_col, 24, "month")
    got = queries.overview(varied, dataset=dataset, spec=spec, grain="month")
    assert got.summary.rows == ref["rows"] == len(df) > 0
    assert got.summary.median_latency == pytest.approx(ref["median"])
    # agent-interactions counts the success of each interaction's execution
    only_ok = spec.model_copy(update={"success": True})
    assert got.summary.successes == queries.count_rows(varied, dataset=dataset, spec=only_ok)
    assert got.summary.total_cost == pytest.approx(ref.get("total_cost"))
    assert {(r.period, r.provider): r.runs for r in got.runs_over_time.itertuples()} == ref[
        "over_time"
    ]
    assert got.latency_histogram["runs"].sum() == df[lat_col].notna().sum()


def test_aggregates_without_metrics_columns_do_not_join_the_metrics_table(varied: Engine) -> None:
    ds = get_dataset(DS)
    lean = str(
        filters.lean_select(ds, FilterSpec(where="execution_time_s > 1"), queries.func.count())
    )
    assert "execution_metrics" not in lean
    joined = str(filters.lean_select(ds, FilterSpec(where="cost_usd > 1"), queries.func.count()))
    assert "LEFT OUTER JOIN execution_metrics" in joined


def test_migrations_match_the_schema_including_the_explore_indexes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": schema.is_ours})
        diff = compare_metadata(context, schema.metadata)
        names = {ix["name"] for ix in inspect(conn).get_indexes("executions")}
    assert diff == []
    assert {"ix_executions_explore", "ix_executions_execution_time_s"} <= names


@pytest.mark.parametrize("name", list(SPECS))
def test_log_latency_buckets_equal_a_plain_count_over_the_exported_rows(
    varied: Engine, name: str
) -> None:
    import bisect

    spec = SPECS[name]
    df = _selected(varied, DS, spec)
    expected: dict[tuple[str, int], int] = {}
    for model, latency in zip(df["model"], df["execution_time_s"], strict=True):
        if pd.isna(latency):
            continue
        key = (model, bisect.bisect_right(queries.LATENCY_EDGES, float(latency)))
        expected[key] = expected.get(key, 0) + 1
    got = queries.overview(varied, dataset=DS, spec=spec).latency_buckets
    assert {(r.model, r.bucket): r.runs for r in got.itertuples()} == expected


#: Interactive reads of the Explore page and the notebook, each given engine and a notebook client.
INTERACTIVE: dict[str, Callable[[Engine, Client], Any]] = {
    "explore overview": lambda e, _: queries.overview(e, dataset=DS, spec=FilterSpec()),
    "explore preview": lambda e, _: queries.preview(
        e, dataset=DS, spec=FilterSpec(where="prompt ~ 'x+y'"), level="full", secret="s"
    ),
    "explore choices": lambda e, _: queries.distinct_values(e, field="provider"),
    "notebook count": lambda _, nb: nb.count(DS, provider=["openai"]),
    "notebook preview": lambda _, nb: nb.preview(DS, limit=3),
}


def _statement_timeouts(engine: Engine) -> set[str]:
    """``statement_timeout`` of three connections of the pool at once (all it holds in tests)."""
    conns = [engine.connect() for _ in range(3)]
    try:
        return {str(c.execute(text("SHOW statement_timeout")).scalar_one()) for c in conns}
    finally:
        for c in conns:
            c.close()


@contextmanager
def _executions_locked(engine: Engine, seconds: float) -> Iterator[None]:
    """Another session locks the executions table for ``seconds`` at most: reads of it wait."""
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE"))
        release = threading.Timer(seconds, holder.rollback)
        release.start()
        try:
            yield
        finally:
            release.cancel()
            release.join()
            holder.rollback()


@pytest.mark.parametrize("name", list(INTERACTIVE))
def test_an_interactive_query_over_the_time_limit_is_stopped_with_a_clear_error(
    data: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if data.dialect.name != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's; SQLite's regex is linear-time already")
    monkeypatch.setenv("NANO_EXPORT_QUERY_TIMEOUT_S", "1")
    notebook = Client(settings.model_copy(update={"query_timeout_s": 1}), user="ana", role="admin")
    before = _statement_timeouts(data)
    # A held lock makes any read of the table wait, deterministically, up to 10 s.
    with _executions_locked(data, 10):
        started = time.monotonic()
        with pytest.raises(QueryTimeout, match=r"longer than 1 s \(NANO_EXPORT_QUERY_TIMEOUT_S\)"):
            INTERACTIVE[name](data, notebook)
        assert time.monotonic() - started < 5
    INTERACTIVE[name](data, notebook)  # the same query runs once nothing holds it up
    assert _statement_timeouts(data) == before  # SET LOCAL: no pooled connection keeps the limit


def test_the_time_limit_leaves_normal_queries_and_exports_alone(
    data: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NANO_EXPORT_QUERY_TIMEOUT_S", "1")
    limited = settings.model_copy(update={"query_timeout_s": 1})
    notebook = Client(limited, user="ana", role="admin")
    assert queries.overview(data, dataset=DS, spec=FilterSpec()).summary.rows == 8
    assert queries.count_rows(data, dataset=DS, spec=FilterSpec(where="prompt ~ 'x+y'")) == 0
    assert notebook.count(DS) == 8 and len(notebook.preview(DS, limit=3)) == 3
    if data.dialect.name != "postgresql":
        return
    # An export waits 1.5 s on a lock, longer than the limit, and still completes.
    request = ExportRequest(dataset=DS, filters=FilterSpec(), privacy="full")
    with _executions_locked(data, 1.5):
        started = time.monotonic()
        rec = jobs.submit_export(
            data,
            limited,
            user="ana",
            role="admin",
            request=request,
            interface="notebook",
            wait=True,
            out_path=tmp_path / "all.csv",
        )
    assert time.monotonic() - started >= 1.5
    assert (rec.status, rec.rows_done) == ("succeeded", 8), rec.error
