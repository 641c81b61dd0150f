"""Every page for every role, the share-link round trip, filter errors and a finished export."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from dashboard_app import Dash, make_dash
from factories import insert_export
from streamlit.testing.v1 import AppTest
from ui_data import insert_interactions

from nano_export import jobs
from nano_export.db import get_engine


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    return make_dash(tmp_path, monkeypatch)


def _nav_titles(at: AppTest) -> set[str]:
    return {t.value for t in at.title}


@pytest.mark.parametrize("user", ["vera", "anna", "adam"])
def test_every_page_renders_for_every_role(dash: Dash, user: str) -> None:
    at = dash.logged_in(user).run()
    assert not at.exception
    assert _nav_titles(at) == {"Explore"}
    assert [m.label for m in at.metric] == ["Runs", "Success rate", "Total cost", "Median latency"]
    assert len(at.get("plotly_chart")) == 4
    sample = at.dataframe[0].value
    assert len(sample) == 8
    # viewers see public rows (no free text), analysts standard, admins full; never a credential
    assert ("prompt" in sample.columns) == (user != "vera")
    assert "sk-proj-" not in sample.to_csv()

    at.switch_page("app_pages/export.py").run()
    assert not at.exception and _nav_titles(at) == {"Export"}
    levels = at.radio(key="nx_privacy").options
    assert levels == {"vera": ["public"], "anna": ["public", "standard"]}.get(
        user, ["public", "standard", "full"]
    )

    at.switch_page("app_pages/history.py").run()
    assert not at.exception and _nav_titles(at) == {"History"}
    assert any("No exports yet" in i.value for i in at.info)

    if user == "adam":
        at.switch_page("app_pages/audit.py").run()
        assert not at.exception and _nav_titles(at) == {"Audit log"}
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page("app_pages/audit.py")


def test_share_link_sets_the_widgets_and_widgets_update_the_link(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["provider"] = ["openai"]
    at.query_params["success"] = "true"
    at.query_params["since"] = "2025-08-02"
    at.run()
    assert at.multiselect(key="nx_provider").value == ["openai"]
    assert str(at.date_input(key="nx_since").value) == "2025-08-02"
    assert at.metric[0].value == "2"  # openai successes from 2025-08-02: ids 2 and 4

    at.multiselect(key="nx_model").select("gpt-5").run()
    params = {k: at.query_params[k] for k in at.query_params}
    assert params["provider"] == ["openai"] or params["provider"] == "openai"
    assert "gpt-5" in str(params["model"])
    assert at.metric[0].value == "1"


def test_invalid_where_is_shown_next_to_the_field(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.text_area(key="nx_where").input("cost_usd >> 1").run()
    assert not at.exception
    sidebar_errors = [e.value for e in at.sidebar.error]
    assert sidebar_errors and "position" in sidebar_errors[0]
    # and at the top of the page, not only in the sidebar
    top = [e.value for e in at.main.error]
    assert top and "position" in top[0] and "Where (Advanced)" in top[0], top
    assert not at.get("plotly_chart")


def test_reversed_dates_name_the_reason_at_the_top_and_by_the_dates(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.date_input(key="nx_since").set_value(date(2025, 8, 5))
    at.date_input(key="nx_until").set_value(date(2025, 8, 2)).run()
    top = [e.value for e in at.main.error]
    assert top and "since" in top[0] and "is after until" in top[0], top
    assert any("is after until" in e.value for e in at.sidebar.error)


def test_an_unknown_dataset_in_a_link_is_named_in_a_notice(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["dataset"] = "bogus"
    at.query_params["provider"] = "openai"
    at.run()
    notices = [w.value for w in at.main.warning]
    assert notices and "unknown dataset 'bogus'" in notices[0], notices
    assert at.selectbox(key="nx_dataset").value == "evaluation-results"
    assert at.metric[0].value == "4"


def test_empty_selection_says_so(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["where"] = "cost_usd > 1000"
    at.run()
    assert at.metric[0].value == "0"
    assert any("No runs match" in i.value for i in at.info)


def test_export_page_runs_an_export_to_completion(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["provider"] = ["openai"]
    at.run()
    at.switch_page("app_pages/export.py").run()
    assert [m.value for m in at.metric][:1] == ["4"]
    assert "--provider openai" in at.code[0].value
    start = next(b for b in at.button if b.label == "Start export")
    start.click().run()
    assert not at.exception

    export_id = at.session_state["nx_export_id"]
    engine = get_engine(dash.settings.db_url)
    rec = jobs.wait_for(engine, export_id, timeout=30)
    assert rec.status == "succeeded" and rec.rows_done == 4
    deadline = time.monotonic() + 20
    while not any("Export finished" in s.value for s in at.success):
        assert time.monotonic() < deadline
        at.run()
    links = [m.value for m in at.markdown if "/api/exports/" in m.value]
    assert any(f"/api/exports/{export_id}/download" in v for v in links)
    request = at.session_state["export_request"]
    assert request.filters.provider == ("openai",) and request.privacy == "standard"

    at.switch_page("app_pages/history.py").run()
    table = at.dataframe[0].value
    assert list(table["rows"]) == [4]
    assert table["download"].iloc[0] == f"/api/exports/{export_id}/download"


def test_history_links_only_exports_the_server_can_serve(dash: Dash, tmp_path: Path) -> None:
    # A CLI or notebook --out file is not in the export folder: the API answers 409 for it, so the
    # page offers no link (neither in the table nor under "Selected export").
    engine = get_engine(dash.settings.db_url)
    dash.settings.export_dir.mkdir(parents=True, exist_ok=True)
    kept = dash.settings.export_dir / "kept1.csv"
    out = tmp_path / "mine.csv"
    for path in (kept, out):
        path.write_text("a\n1\n")
    now = time.time()
    for export_id, path, age in (("kept1", kept, 60), ("mine1", out, 0)):
        insert_export(
            engine,
            owner="anna",
            export_id=export_id,
            status="succeeded",
            at=datetime.fromtimestamp(now - age, UTC),
            rows_done=1,
            file_path=str(path),
        )
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/history.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["id"]) == ["kept1", "mine1"]
    links = {i: v for i, v in zip(table["id"], table["download"], strict=True) if pd.notna(v)}
    assert links == {"kept1": "/api/exports/kept1/download"}

    def shown_links() -> list[str]:
        return [m.value for m in at.markdown if "/download" in m.value]

    assert at.selectbox(key="nx_history_pick").value == "mine1"  # newest first
    assert any("Export finished" in s.value for s in at.success)
    assert shown_links() == []
    assert any("not downloadable here" in c.value for c in at.caption)
    at.selectbox(key="nx_history_pick").select("kept1").run()
    assert any("/api/exports/kept1/download" in v for v in shown_links())


def test_charts_are_plotly_figures_from_sql_aggregates(dash: Dash) -> None:
    at = dash.logged_in("adam").run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    success = specs[0]["data"]
    models = {y for trace in success for y in trace["y"]}
    assert "gpt-5-mini" in models and "gpt-oss:20b" in models


def test_sample_rows_show_blanks_for_empty_cells(dash: Dash) -> None:
    at = dash.logged_in("adam").run()
    sample = at.dataframe[0].value
    assert "error" in sample.columns
    assert "" in list(sample["error"])  # successful runs have no error
    assert not sample.isna().any().any()


def test_latency_chart_has_few_short_unrotated_buckets(dash: Dash) -> None:
    at = dash.logged_in("adam").run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    latency = specs[1]
    labels = latency["data"][0]["x"]
    assert 2 <= len(labels) <= 12 and all(len(x) <= 4 for x in labels), labels
    assert labels[0] == "≤2s" and labels[-1] == "≤20s"  # latencies 1..10 s
    assert latency["data"][0]["text"][0][0] == "1–2s"  # the hover names the whole range
    assert latency["layout"]["xaxis"].get("tickangle") == 0
    total = sum(sum(row) for row in latency["data"][0]["customdata"])
    assert total == 8  # every run counted once


def test_charts_have_no_mode_bar(dash: Dash) -> None:
    at = dash.logged_in("adam").run()
    for chart in at.get("plotly_chart"):
        assert json.loads(chart.proto.config).get("displayModeBar") is False


def test_failed_outcome_explains_the_success_chart(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["success"] = "false"
    at.run()
    assert at.metric[0].value == "2"
    assert len(at.get("plotly_chart")) == 3
    assert any("Outcome" in i.value and "0%" in i.value for i in at.info)


def test_a_bad_link_parameter_keeps_the_good_ones(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["provider"] = "openai"
    at.query_params["since"] = "2026-13-45"
    at.query_params["success"] = "true"
    at.run()
    assert at.multiselect(key="nx_provider").value == ["openai"]
    assert at.segmented_control(key="nx_success").value == "Succeeded"
    assert at.date_input(key="nx_since").value is None
    warnings = [w.value for w in at.sidebar.warning]
    assert warnings and "since" in warnings[0] and "provider" not in warnings[0], warnings
    assert at.metric[0].value == "3"


def test_export_columns_all_or_choose(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/export.py").run()
    mode = at.segmented_control(key="nx_columns_mode")
    assert mode.value == "All columns"
    assert not [m for m in at.multiselect if m.key == "nx_columns"]
    assert at.session_state["export_request"].columns is None
    mode.set_value("Choose columns").run()
    picker = at.multiselect(key="nx_columns")
    picker.unselect("prompt").run()
    assert "prompt" not in at.session_state["export_request"].columns
    assert "--columns" in at.code[0].value


def test_the_format_picker_has_a_hint_per_format_and_a_workbook_counts_its_sheets(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/export.py").run()
    picker = at.radio(key="nx_format")
    assert picker.options[:6] == [
        "CSV", "CSV, gzip", "Excel workbook", "Parquet", "JSON Lines", "JSON Lines, gzip",
    ]  # fmt: skip
    assert "Sheets" not in [m.label for m in at.metric]
    picker.set_value("Excel workbook").run()
    assert not at.exception
    assert at.session_state["export_request"].format == "xlsx"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows to export"] == "8" and metrics["Sheets"] == "1"
    assert "--format xlsx" in at.code[0].value
    start = next(b for b in at.button if b.label == "Start export")
    start.click().run()
    export_id = at.session_state["nx_export_id"]
    rec = jobs.wait_for(get_engine(dash.settings.db_url), export_id, timeout=30)
    assert rec.status == "succeeded" and rec.file_name.endswith(".xlsx")
    at.switch_page("app_pages/history.py").run()
    assert list(at.dataframe[0].value["format"]) == ["xlsx"]


def test_run_again_loads_the_spec_into_the_builder_and_starts_nothing(dash: Dash) -> None:
    engine = get_engine(dash.settings.db_url)
    insert_export(
        engine,
        owner="anna",
        export_id="old1",
        status="succeeded",
        at=datetime.now(UTC),
        rows_done=2,
        spec=json.dumps(
            {"filters": {"provider": ["anthropic"]}, "columns": ["execution_id", "model"]}
            | {"rename": {"model": "m"}}
        ),
        privacy="public",
    )
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/history.py").run()
    next(b for b in at.button if b.key == "nx_hist_again").click().run()
    assert not at.exception
    assert _nav_titles(at) == {"Export"}
    assert [r.id for r in jobs.list_exports(engine, user="anna")] == ["old1"]  # nothing started
    assert any("Start export" in b.label for b in at.button)
    assert any("Loaded the spec of export old1" in i.value for i in at.info)
    assert at.multiselect(key="nx_provider").value == ["anthropic"]
    assert at.radio(key="nx_privacy").value == "public"
    assert at.multiselect(key="nx_columns").value == ["execution_id", "model"]
    assert at.metric[0].value == "2"  # the builder's count is the spec's
    request = at.session_state["export_request"]
    assert request.filters.provider == ("anthropic",) and request.columns == [
        "execution_id",
        "model",
    ]


def test_a_viewer_is_told_why_only_public(dash: Dash) -> None:
    at = dash.logged_in("vera").run()
    at.switch_page("app_pages/export.py").run()
    assert any(
        "Your role (viewer) may export the **public** level only" in c.value for c in at.caption
    )


def test_interactions_are_counted_as_interactions_and_costs_explained(dash: Dash) -> None:
    insert_interactions(get_engine(dash.settings.db_url))
    at = dash.logged_in("anna")
    at.query_params["dataset"] = "agent-interactions"
    at.run()
    assert at.metric[0].label == "Interactions"
    assert any("no cost column" in i.value for i in at.info)


def test_ollama_costs_nothing_and_says_0(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["provider"] = "ollama"
    at.run()
    assert at.metric[2].value == "$0"


def test_statuses_are_words_without_emoji(dash: Dash) -> None:
    insert_export(
        get_engine(dash.settings.db_url),
        owner="anna",
        export_id="done1",
        status="succeeded",
        at=datetime.now(UTC),
        rows_done=1,
    )
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/history.py").run()
    assert list(at.dataframe[0].value["status"]) == ["succeeded"]
    text = " ".join(str(p.proto) for p in at.get("progress"))
    assert "Succeeded" in text and not any(ord(ch) > 0x2600 for ch in text)
