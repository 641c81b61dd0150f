"""Explore's in-memory columns give the SQL figures exactly, and are never stale after a write."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, delete, text, update
from test_queries import SPECS, _insert_varied

from nano_export import columnar, queries
from nano_export.db import get_engine
from nano_export.importers import import_file
from nano_export.models import FilterSpec
from nano_export.overview import Overview
from nano_export.queries import Grain
from nano_export.schema import execution_metrics, executions
from nano_export.seed import seed_database

DS = "evaluation-results"
FIXTURES = Path(__file__).parent / "fixtures" / "importers"
#: The specs the columns answer (every one but a ``where``), plus a since/until given as times.
MEMORY_SPECS = {
    **{name: spec for name, spec in SPECS.items() if not spec.where},
    "times, success and models": FilterSpec(
        since=datetime(2025, 5, 1, 23, 30, tzinfo=UTC),
        until=datetime(2025, 11, 2, 23, 59, tzinfo=UTC),
        success=False,
        model=("gpt-5", "gpt-oss:20b"),
    ),
    "test by name": FilterSpec(test=("Test 2",), provider=("openai",)),
}


@pytest.fixture(autouse=True)
def _fresh_columns() -> None:
    columnar.forget()


@pytest.fixture
def varied(engine: Engine) -> Engine:
    _insert_varied(engine)
    return engine


def _assert_same(got: Overview, want: Overview) -> None:
    assert got.summary.rows == want.summary.rows
    assert got.summary.successes == want.summary.successes
    assert got.summary.median_latency == want.summary.median_latency
    if want.summary.total_cost is None:
        assert got.summary.total_cost is None
    else:
        assert got.summary.total_cost == pytest.approx(want.summary.total_cost, rel=1e-12)
    for name in ("by_model", "latency_histogram", "runs_over_time", "latency_buckets"):
        pd.testing.assert_frame_equal(
            getattr(got, name), getattr(want, name), check_dtype=False, rtol=1e-12
        )


def _memory(engine: Engine, spec: FilterSpec, **kw: object) -> Overview:
    got = columnar.overview(engine, dataset=DS, spec=spec, **kw)  # type: ignore[arg-type]
    assert got is not None, "the columns did not answer"
    return got


@pytest.mark.parametrize("grain", ["day", "week", "month", None])
@pytest.mark.parametrize("name", list(MEMORY_SPECS))
def test_the_in_memory_overview_equals_the_sql_overview(
    varied: Engine, name: str, grain: Grain | None
) -> None:
    spec = MEMORY_SPECS[name]
    want = queries.sql_overview(varied, dataset=DS, spec=spec, bins=9, grain=grain)
    _assert_same(_memory(varied, spec, bins=9, grain=grain), want)


def test_performance_metrics_is_answered_from_memory_and_agent_interactions_in_sql(
    varied: Engine,
) -> None:
    spec = FilterSpec(provider=("openai", "ollama"))
    got = columnar.overview(varied, dataset="performance-metrics", spec=spec)
    assert got is not None
    _assert_same(got, queries.sql_overview(varied, dataset="performance-metrics", spec=spec))
    assert columnar.overview(varied, dataset="agent-interactions", spec=spec) is None


def test_a_where_falls_back_to_sql_with_the_same_figures(varied: Engine) -> None:
    spec = FilterSpec(provider=("openai",), where="response ~ 'Washington'")
    assert columnar.overview(varied, dataset=DS, spec=spec) is None
    got = queries.overview(varied, dataset=DS, spec=spec)
    _assert_same(got, queries.sql_overview(varied, dataset=DS, spec=spec))
    assert 0 < got.summary.rows < queries.count_rows(varied, dataset=DS, spec=FilterSpec())


def test_count_preview_and_filter_choices_equal_sql(varied: Engine) -> None:
    for spec in MEMORY_SPECS.values():
        assert columnar.count(varied, dataset=DS, spec=spec) == len(
            queries.preview(varied, dataset=DS, spec=spec, level="full", secret="s", limit=10**6)
        )
        first = columnar.first_ids(varied, dataset=DS, spec=spec, limit=7)
        with varied.connect() as conn:
            from nano_export import filters
            from nano_export.datasets import get_dataset

            ds = get_dataset(DS)
            stmt = filters.apply_filters(ds.select(["execution_id"]), spec, ds).limit(7)
            assert first == list(conn.execute(stmt).scalars())
    assert columnar.distinct(varied, "provider") == ["anthropic", "ollama", "openai"]
    assert columnar.distinct(varied, "test_id") == ["t0", "t1", "t2"]
    assert queries.models_by_provider(varied)["openai"] == ["gpt-5", "gpt-5-mini"]


def test_an_import_shows_in_the_next_overview_of_the_same_process(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    import_file(engine, FIXTURES / "responses.jsonl")
    before = queries.overview(engine, dataset=DS, spec=FilterSpec())
    assert before.summary.rows == 3
    caplog.set_level(logging.INFO, logger="nano_export.columnar")
    report = import_file(engine, FIXTURES / "eval_results_7_quirks_test.md")
    after = queries.overview(engine, dataset=DS, spec=FilterSpec())
    assert after.summary.rows == 3 + report.added > 3
    _assert_same(after, queries.sql_overview(engine, dataset=DS, spec=FilterSpec()))
    assert [r.message for r in caplog.records] == ["explore columns appended"]
    assert queries.count_rows(engine, dataset=DS, spec=FilterSpec()) == after.summary.rows


def test_updates_and_deletes_show_at_once(varied: Engine) -> None:
    spec = FilterSpec(provider=("openai",))
    before = _memory(varied, spec)
    with varied.begin() as conn:
        conn.execute(update(execution_metrics).values(cost_usd=1.0))
    after_update = _memory(varied, spec)
    assert after_update.summary.total_cost == pytest.approx(
        queries.count_rows(
            varied, dataset=DS, spec=spec.model_copy(update={"where": "cost_usd = 1"})
        )
    )
    assert after_update.summary.total_cost != before.summary.total_cost
    with varied.begin() as conn:
        conn.execute(delete(executions).where(executions.c.provider == "openai"))
    assert _memory(varied, spec).summary.rows == 0


def test_a_write_from_outside_the_process_shows_at_once(varied: Engine) -> None:
    """Another replica (here: another engine, its own connection) writes; this process sees it."""
    before = _memory(varied, FilterSpec()).summary.rows
    other = create_engine(varied.url.render_as_string(hide_password=False))
    try:
        with other.begin() as conn:
            conn.execute(text("UPDATE executions SET success = :ok WHERE id <= 10"), {"ok": False})
            conn.execute(text("DELETE FROM executions WHERE id = 90"))
    finally:
        other.dispose()
    got = _memory(varied, FilterSpec())
    assert got.summary.rows == before - 1
    _assert_same(got, queries.sql_overview(varied, dataset=DS, spec=FilterSpec()))


def test_a_row_committed_out_of_id_order_is_not_missed(engine: Engine) -> None:
    _insert_varied(engine, n=20)
    assert _memory(engine, FilterSpec()).summary.rows == 20
    for k in (40, 30):  # a higher id commits first, then a lower one (as concurrent imports may)
        with engine.begin() as conn:
            conn.execute(
                executions.insert().values(
                    id=k,
                    source_key=f"late-{k}",
                    provider="openai",
                    model="gpt-5",
                    started_at=datetime(2025, 6, 1, tzinfo=UTC),
                    success=True,
                    source="late",
                )
            )
        _memory(engine, FilterSpec())  # the columns hold 40 before 30 arrives
    got = _memory(engine, FilterSpec())
    assert got.summary.rows == 22
    assert columnar.first_ids(engine, dataset=DS, spec=FilterSpec(), limit=100)[-2:] == [30, 40]  # type: ignore[index]


def test_seeding_shows_at_once(engine: Engine) -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    seed_database(engine, rows=50, anchor=anchor)
    assert _memory(engine, FilterSpec()).summary.rows == 50
    seed_database(engine, rows=120, anchor=anchor)
    got = _memory(engine, FilterSpec(since=date(2025, 12, 1)))
    _assert_same(
        got, queries.sql_overview(engine, dataset=DS, spec=FilterSpec(since=date(2025, 12, 1)))
    )
    assert _memory(engine, FilterSpec()).summary.rows == 120


def test_an_emptied_version_row_falls_back_to_sql(varied: Engine) -> None:
    assert _memory(varied, FilterSpec()).summary.rows == 90
    with varied.begin() as conn:
        conn.execute(text("DELETE FROM data_versions"))
    assert columnar.overview(varied, dataset=DS, spec=FilterSpec()) is None
    assert queries.overview(varied, dataset=DS, spec=FilterSpec()).summary.rows == 90


def test_the_columns_load_in_the_background(varied: Engine) -> None:
    columnar.warm(varied)
    columnar.warm(varied)  # once per process
    cols = columnar.columns_for(varied)
    assert cols is not None and cols.rows == 90
    assert 0 < cols.nbytes < 90 * 64


def test_an_empty_selection_and_a_selection_without_latencies(varied: Engine) -> None:
    nothing = _memory(varied, FilterSpec(model=("no-such-model",)))
    assert (nothing.summary.rows, nothing.summary.median_latency) == (0, None)
    with varied.begin() as conn:
        conn.execute(update(executions).values(execution_time_s=None))
    got = _memory(varied, FilterSpec(since=date(2025, 3, 1) + timedelta(days=30)))
    want = queries.sql_overview(
        varied, dataset=DS, spec=FilterSpec(since=date(2025, 3, 1) + timedelta(days=30))
    )
    assert got.summary.median_latency is None and got.latency_histogram.empty
    _assert_same(got, want)


def test_the_explore_page_shows_an_import_on_its_next_run(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamlit's cache is keyed by the data version: the next run shows the new totals."""
    from dashboard_app import make_dash

    dash = make_dash(tmp_path, monkeypatch, db_url=db_url)
    engine = get_engine(db_url)
    at = dash.logged_in("adam").run()
    assert not at.exception and at.metric[0].value == "8"
    if engine.dialect.name == "postgresql":  # the rows above took ids 1..8 without the sequence
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('executions', 'id'), 100)"))
    assert import_file(engine, FIXTURES / "responses.jsonl").added == 3
    at.run()
    assert not at.exception and at.metric[0].value == "11"
    assert len(at.dataframe[0].value) == 11
    providers = at.multiselect(key="nx_provider").options
    assert set(providers) >= {"anthropic", "ollama", "openai"}


def test_a_large_sqlite_load_reads_in_a_child_process_with_the_same_columns(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connectorx (its own SQLite library) runs in a process of its own: the same arrays."""
    from nano_export.columnar import store

    engine = get_engine(sqlite_url)
    _insert_varied(engine)
    in_process = columnar.columns_for(engine)
    columnar.forget()
    monkeypatch.setattr(store, "IN_PROCESS_ROWS", 0)
    child = columnar.columns_for(engine)
    assert in_process is not None and child is not None and child.rows == 90
    for name in ("ids", "started_us", "success", "latency", "cost"):
        assert getattr(child, name).tolist() == pytest.approx(
            getattr(in_process, name).tolist(), nan_ok=True
        ), name
    assert child.values == in_process.values and child.metrics_rows == in_process.metrics_rows
    spec = FilterSpec(since=date(2025, 6, 1), provider=("openai",))
    _assert_same(_memory(engine, spec), queries.sql_overview(engine, dataset=DS, spec=spec))
