"""Sorting a page of rows by cost walks the metrics' own index, in the same order as before."""

from __future__ import annotations

import pytest
from factories import insert_executions
from sqlalchemy import Engine, delete, text, update

from nano_export import rows
from nano_export.datasets import get_dataset
from nano_export.models import FilterSpec
from nano_export.schema import execution_metrics

N = 230
KEY = "rows-sort-test-secret-0123456789abcdef01234567"


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    insert_executions(engine, N)
    # some costs unknown: where NULLs sort is the database's own choice, kept as it was
    with engine.begin() as conn:
        conn.execute(
            update(execution_metrics)
            .where(execution_metrics.c.execution_id % 17 == 0)
            .values(cost_usd=None)
        )
    return engine


def _reference(engine: Engine, *, descending: bool, where: str = "") -> list[int]:
    """Every id in the order of the dataset's join sorted by cost, ties by id (the old query)."""
    direction = "desc" if descending else "asc"
    sql = (
        "select e.id from executions e left outer join execution_metrics m "
        f"on m.execution_id = e.id {where} order by m.cost_usd {direction}, e.id"
    )
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).scalars())


def _paged(engine: Engine, *, descending: bool, spec: FilterSpec | None = None) -> list[int]:
    out: list[int] = []
    number = 1
    while True:
        found = rows.rows_page(
            engine,
            dataset="evaluation-results",
            spec=spec or FilterSpec(),
            level="standard",
            secret=KEY,
            page=number,
            page_size=40,
            sort="cost_usd",
            descending=descending,
        )
        out.extend(int(v) for v in found.rows["execution_id"])
        if number >= found.pages:
            return out
        number += 1


@pytest.mark.parametrize("descending", [False, True])
def test_pages_sorted_by_cost_keep_the_joins_order(loaded: Engine, descending: bool) -> None:
    expected = _reference(loaded, descending=descending)
    assert len(expected) == N
    assert _paged(loaded, descending=descending) == expected


def test_a_filtered_sort_by_cost_keeps_the_order(loaded: Engine) -> None:
    spec = FilterSpec(provider=("openai",), where="execution_id > 30")
    expected = _reference(
        loaded, descending=True, where="where e.provider = 'openai' and e.id > 30"
    )
    assert expected
    assert _paged(loaded, descending=True, spec=spec) == expected


def test_an_execution_without_metrics_still_has_its_place(loaded: Engine) -> None:
    with loaded.begin() as conn:
        conn.execute(delete(execution_metrics).where(execution_metrics.c.execution_id.in_([5, 99])))
    for descending in (False, True):
        expected = _reference(loaded, descending=descending)
        assert len(expected) == N and 5 in expected and 99 in expected
        assert _paged(loaded, descending=descending) == expected


def test_the_sort_by_cost_walks_the_cost_index_on_sqlite(loaded: Engine) -> None:
    if loaded.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL checks the order above")
    ds = get_dataset("evaluation-results")
    with loaded.connect() as conn:
        stmt = rows.page_ids_statement(
            conn, ds, FilterSpec(), sort="cost_usd", descending=False, offset=80, limit=40
        )
        sql = str(stmt.compile(loaded, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(row[-1] for row in conn.execute(text("explain query plan " + sql)))
    assert "ix_execution_metrics_cost_usd_id" in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
