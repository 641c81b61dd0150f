"""The Views and Dictionary pages: save, share, open and export a view; the dictionary text."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_app import Dash, make_dash

from nano_export import views
from nano_export.datasets import DATASETS
from nano_export.db import get_engine


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    return make_dash(tmp_path, monkeypatch)


def test_save_a_shared_view_and_a_teammate_opens_it(dash: Dash) -> None:
    at = dash.logged_in("anna")
    at.query_params["provider"] = "anthropic"
    at.run()
    at.switch_page("app_pages/views.py").run()
    assert not at.exception
    at.text_input(key="nx_views_name").input("anthropic runs")
    at.toggle(key="nx_views_shared").set_value(True)
    at.button(key="nx_views_save").click().run()
    assert any("Saved the view 'anthropic runs' (shared)" in s.value for s in at.success)
    [saved] = views.list_views(get_engine(dash.settings.db_url), user="anna")
    assert saved.filters.provider == ("anthropic",) and saved.shared

    mate = dash.logged_in("adam").run()
    mate.switch_page("app_pages/views.py").run()
    assert mate.selectbox(key="nx_views_pick").value == "anna/anthropic runs"
    next(b for b in mate.button if b.key == "nx_views_open").click().run()
    assert not mate.exception
    assert [t.value for t in mate.title] == ["Explore"]
    assert mate.multiselect(key="nx_provider").value == ["anthropic"]
    assert mate.metric[0].value == "2"


def test_export_from_a_view_loads_the_builder_without_starting(dash: Dash) -> None:
    engine = get_engine(dash.settings.db_url)
    views.save_view(
        engine,
        name="ollama",
        owner="anna",
        dataset="evaluation-results",
        spec=views.FilterSpec(provider=("ollama",)),
        columns=["execution_id", "cost_usd"],
    )
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/views.py").run()
    next(b for b in at.button if b.key == "nx_views_export").click().run()
    assert [t.value for t in at.title] == ["Export"]
    assert any("Loaded the view anna/ollama" in i.value for i in at.info)
    assert at.multiselect(key="nx_columns").value == ["execution_id", "cost_usd"]
    assert at.metric[0].value == "2"
    assert "nx_export_id" not in at.session_state


def test_the_column_picker_explains_each_column(dash: Dash) -> None:
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/export.py").run()
    mode = at.segmented_control(key="nx_columns_mode")
    rank = DATASETS["evaluation-results"].column("rank")
    assert rank.meaning in mode.help and "**cost_usd**" in mode.help
    mode.set_value("Choose columns").run()
    picker = at.multiselect(key="nx_columns")
    assert rank.help in picker.help
    assert DATASETS["evaluation-results"].column("perf_grade").meaning in picker.help


def test_the_dictionary_page_lists_every_column(dash: Dash) -> None:
    at = dash.logged_in("vera").run()
    at.switch_page("app_pages/dictionary.py").run()
    assert not at.exception
    tables = [d.value for d in at.dataframe]
    assert [list(t["column"]) for t in tables] == [
        list(ds.column_names) for ds in DATASETS.values()
    ]
    assert "S (best)" in " ".join(tables[0]["values"])


def test_schedule_from_a_view_uses_its_spec_in_the_new_schedule(dash: Dash) -> None:
    views.save_view(
        get_engine(dash.settings.db_url),
        name="openai",
        owner="anna",
        dataset="performance-metrics",
        spec=views.FilterSpec(provider=("openai",)),
    )
    at = dash.logged_in("anna").run()
    at.switch_page("app_pages/views.py").run()
    next(b for b in at.button if b.key == "nx_views_schedule").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Schedules"]
    assert at.toggle(key="nx_sched_use").value is True
    assert any("performance-metrics" in c.value for c in at.caption)
