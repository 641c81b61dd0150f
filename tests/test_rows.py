"""Browsing rows: pages, sorting on indexed columns, text search as a where, one trace."""

from __future__ import annotations

import pytest
from factories import SECRET, insert_executions
from sqlalchemy import Engine

from nano_export import queries, rows
from nano_export.errors import BadInput, InvalidFilter, NotFound
from nano_export.models import FilterSpec

N = 250
KEY = "rows-test-secret-0123456789abcdef0123456789"


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    insert_executions(engine, N)
    return engine


def page(engine: Engine, **kw: object) -> rows.RowsPage:
    args: dict[str, object] = {
        "dataset": "evaluation-results",
        "spec": FilterSpec(),
        "level": "full",
        "secret": KEY,
    }
    args.update(kw)
    return rows.rows_page(engine, **args)  # type: ignore[arg-type]


def test_page_three_holds_rows_201_to_250(loaded: Engine) -> None:
    third = page(loaded, page=3)
    assert (third.total, third.pages, third.page, third.first) == (N, 3, 3, 201)
    assert list(third.rows["execution_id"]) == list(range(201, 251))
    assert page(loaded, page=99).page == 3  # past the end: the last page


def test_sorting_by_cost_descending_breaks_ties_by_id(loaded: Engine) -> None:
    first = page(loaded, sort="cost_usd", descending=True, page_size=5)
    # costs are 0.00001 * (id % 100): ids ending in 99 cost most, lowest id first
    assert list(first.rows["execution_id"]) == [99, 199, 98, 198, 97]
    assert first.rows["cost_usd"].is_monotonic_decreasing


def test_search_is_a_literal_case_insensitive_where_over_visible_text(loaded: Engine) -> None:
    found = page(loaded, search="ANSWER 12")
    assert found.total == 11  # answer 12 and answer 120 … 129
    assert found.spec.where and "response ~ '(?i)ANSWER 12'" in found.spec.where
    assert found.total == queries.count_rows(loaded, dataset="evaluation-results", spec=found.spec)
    # regex characters are matched as themselves
    assert page(loaded, search='what is 3, "quoted"?').total == 1
    assert page(loaded, search="SUM(A12)").total == 1
    assert page(loaded, search="[").total == 0
    # combined with the spec's own where by "and"
    narrowed = page(loaded, search="answer 12", spec=FilterSpec(where="execution_id >= 125"))
    assert narrowed.total == 5


def test_search_never_matches_what_the_level_masks(loaded: Engine) -> None:
    assert page(loaded, search="bob@example.com", level="standard").total == 0
    assert page(loaded, search=SECRET, level="full").total == 0
    # the public level shows no free text, so a search does not look into it
    assert page(loaded, search="answer 12", level="public").total == 0
    assert "prompt" not in page(loaded, level="public").rows.columns
    # a hashed identity is not searchable by its stored value
    assert page(loaded, search="sess-4", level="standard").total == 0
    assert page(loaded, search="sess-4", level="full").total > 0


def test_page_cells_are_redacted_like_the_file(loaded: Engine) -> None:
    shown = page(loaded, level="standard", page_size=20)
    text = shown.rows.to_csv()
    assert SECRET not in text and "bob@example.com" not in text and "[REDACTED]" in text
    assert "sess-" not in text  # hashed at standard


def test_bad_sort_and_page_size_are_refused(loaded: Engine) -> None:
    with pytest.raises(BadInput, match="cannot sort evaluation-results by 'prompt'"):
        page(loaded, sort="prompt")
    with pytest.raises(BadInput, match="page size"):
        page(loaded, page_size=0)
    with pytest.raises(InvalidFilter):
        page(loaded, spec=FilterSpec(where="nope = 1"))


def test_execution_detail_has_the_record_and_its_trace_in_order(loaded: Engine) -> None:
    detail = rows.execution_detail(loaded, execution_id=10, level="standard", secret=KEY)
    assert detail.record["execution_id"] == 10 and detail.record["model"]
    assert SECRET not in str(detail.record["prompt"])
    assert list(detail.trace["seq"]) == [0, 1]
    assert list(detail.trace["kind"]) == ["request", "response"]
    assert SECRET not in detail.trace.to_csv()
    with pytest.raises(NotFound, match="no execution 9999"):
        rows.execution_detail(loaded, execution_id=9999, level="full", secret=KEY)
