"""The Rows page: pages, sort, search and an execution's trace, as the export would have them."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_app import Dash, make_dash
from streamlit.testing.v1 import AppTest
from ui_data import TRACE, insert_interactions

from nano_export.db import get_engine

PAGE = "app_pages/rows.py"


@pytest.fixture
def dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dash:
    d = make_dash(tmp_path, monkeypatch)
    insert_interactions(get_engine(d.settings.db_url))
    return d


def on_page(dash: Dash, user: str) -> AppTest:
    at = dash.logged_in(user).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Rows"]
    return at


def test_rows_are_sorted_searched_and_redacted(dash: Dash) -> None:
    at = on_page(dash, "anna")
    table = at.dataframe[0].value
    assert list(table["execution_id"]) == list(range(1, 9))
    assert "sk-proj-" not in table.to_csv() and "bob@example.com" not in table.to_csv()
    assert any("rows 1–8 of 8" in c.value and "UTC" in c.value for c in at.caption)

    at.selectbox(key="nx_rows_sort").select("cost_usd").run()
    at.segmented_control(key="nx_rows_order").set_value("Descending").run()
    assert list(at.dataframe[0].value["execution_id"])[:2] == [6, 5]  # 0.60, 0.50

    at.text_input(key="nx_rows_search").input("GPT-5").run()
    found = at.dataframe[0].value
    assert list(found["execution_id"]) == [4, 3, 2, 1]  # still by cost, descending
    assert any("rows 1–4 of 4" in c.value for c in at.caption)
    # an error that holds a credential never matches a search (it would reveal the masked text)
    at.text_input(key="nx_rows_search").input("boom").run()
    assert any("No rows match" in i.value for i in at.info)


def test_a_viewer_sees_no_free_text_and_cannot_search_it(dash: Dash) -> None:
    at = on_page(dash, "vera")
    assert "prompt" not in at.dataframe[0].value.columns
    at.text_input(key="nx_rows_search").input("Washington").run()
    assert any("No rows match" in i.value for i in at.info)


def test_paging_goes_forward_and_back(dash: Dash) -> None:
    at = on_page(dash, "anna")
    assert at.number_input(key="nx_rows_page").value == 1
    next_button = next(b for b in at.button if b.key == "nx_rows_next")
    assert next_button.disabled  # 8 rows: one page


def test_opening_an_execution_shows_its_trace_in_order(dash: Dash) -> None:
    at = on_page(dash, "anna")
    at.selectbox(key="nx_rows_open").select(1).run()
    assert not at.exception
    steps = [m.value for m in at.markdown if m.value[:2] in {f"{n}." for n in range(1, 10)}]
    assert len(steps) == len(TRACE)
    tools = [t for _, t, _ in TRACE if t]
    positions = [next(i for i, s in enumerate(steps) if tool in s) for tool in tools]
    assert positions == sorted(positions)  # read_file, write_file, list_directory in order
    codes = " ".join(c.value for c in at.code)
    assert "ghp_" not in codes and "[REDACTED]" in codes  # the token in the arguments
    assert "sk-proj-" not in codes  # the prompt
    assert [m.label for m in at.metric][:2] == ["Outcome", "Time"]
