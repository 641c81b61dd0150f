"""Browsing every row of a selection: pages, sorting, text search and one execution's trace.

A page is the export's own query (``filters.apply_filters`` over ``Dataset.select``) with an
ORDER BY on one indexed column and LIMIT/OFFSET, redacted by ``privacy.apply_policy``: the rows a
page shows are the rows, and the cells, of the file of the same spec. Text search is not a query
of its own: it becomes a ``where`` clause (a case-insensitive regular expression over the text
columns visible at the privacy level), so a search is a spec that the CLI and the export repeat
exactly, and text that may hold masked content never matches (``filters._unmasked``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from nano_export import filters, privacy, queries
from nano_export.datasets import Dataset, get_dataset
from nano_export.db import read_connection
from nano_export.errors import BadInput, NotFound
from nano_export.models import FilterSpec, Privacy
from nano_export.schema import execution_metrics, executions

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Columns a page may be sorted by, per dataset: each has an index, so a page stays fast.
SORTABLE: dict[str, tuple[str, ...]] = {
    "evaluation-results": (
        "execution_id",
        "started_at",
        "provider",
        "model",
        "test_id",
        "eval_run_id",
        "execution_time_s",
        "cost_usd",
    ),
    "performance-metrics": (
        "execution_id",
        "started_at",
        "provider",
        "model",
        "execution_time_s",
        "cost_usd",
    ),
    "agent-interactions": ("interaction_id", "execution_id", "started_at"),
}
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


@dataclass(frozen=True)
class RowsPage:
    """One page of a selection: the redacted rows and where they sit in it."""

    rows: pd.DataFrame
    total: int
    page: int
    page_size: int
    spec: FilterSpec

    @property
    def pages(self) -> int:
        """How many pages the selection has (at least 1)."""
        return max(1, math.ceil(self.total / self.page_size))

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row in the selection (0 when empty)."""
        return 0 if self.rows.empty else (self.page - 1) * self.page_size + 1


def _regex_literal(text: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in text)


def search_where(text: str, *, dataset: str, level: Privacy) -> str | None:
    """The ``where`` clause of a text search: any text column shown at ``level`` contains
    ``text`` (case-insensitive, matched literally). None for blank text."""
    words = text.strip()
    if not words:
        return None
    ds = get_dataset(dataset)
    visible = privacy.columns_for_level(list(ds.column_names), level)
    # Columns the level hashes or leaves out: searching their stored value would reveal it.
    hidden = filters.HIDDEN_IN_WHERE[level]
    texts = [
        c.name
        for c in ds.columns
        if c.kind == "text" and c.name in visible and c.name not in hidden
    ]
    pattern = ("(?i)" + _regex_literal(words)).replace("'", "''")
    return "(" + " or ".join(f"{name} ~ '{pattern}'" for name in texts) + ")"


def with_search(spec: FilterSpec, text: str | None, *, dataset: str, level: Privacy) -> FilterSpec:
    """``spec`` narrowed by a text search (its ``where`` and the search's, joined by ``and``)."""
    clause = search_where(text or "", dataset=dataset, level=level)
    if clause is None:
        return spec
    where = f"({spec.where}) and {clause}" if spec.where else clause
    return spec.model_copy(update={"where": where})


def rows_page(
    engine: Engine,
    *,
    dataset: str,
    spec: FilterSpec,
    level: Privacy,
    secret: str,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    sort: str | None = None,
    descending: bool = False,
    search: str | None = None,
) -> RowsPage:
    """Page ``page`` (1-based) of the selection, sorted by ``sort`` and redacted at ``level``.

    Rows with the same sort value keep the dataset's own order (its id). A page past the end is
    the last page.
    """
    ds = get_dataset(dataset)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BadInput(f"page size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    sortable = SORTABLE.get(dataset, ())
    if sort is not None and sort not in sortable:
        raise BadInput(f"cannot sort {dataset} by {sort!r}; choose one of: {', '.join(sortable)}")
    full = with_search(spec, search, dataset=dataset, level=level)
    filters.validate(full, ds, level)
    total = queries.count_rows(engine, dataset=dataset, spec=full)
    pages = max(1, math.ceil(total / page_size))
    page = min(max(1, page), pages)
    columns = privacy.columns_for_level(list(ds.column_names), level)
    # Two steps: the page's ids from a narrow sorted scan (indexes only, no wide text rows),
    # then those rows in full. Sorting wide rows would read every prompt and response.
    row_id = ds.order_by[0]
    with read_connection(engine) as conn:
        ids_stmt = page_ids_statement(
            conn,
            ds,
            full,
            sort=sort,
            descending=descending,
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        ids = list(conn.execute(ids_stmt).scalars())
        stmt = ds.select(columns).where(row_id.in_(ids))
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if not frame.empty:
        place = {value: n for n, value in enumerate(ids)}
        frame = frame.iloc[frame[ds.columns[0].name].map(place).argsort()].reset_index(drop=True)
    rows = privacy.apply_policy(frame, level=level, secret=secret)
    return RowsPage(rows=rows, total=total, page=page, page_size=page_size, spec=full)


def _metrics_cover_every_execution(conn: Connection) -> bool:
    """Every execution has its metrics row. The metrics' key is the execution's id (a foreign
    key), so equal counts mean one row each: the LEFT JOIN of the metrics is then an inner join."""
    counts = [
        conn.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (executions, execution_metrics)
    ]
    return counts[0] == counts[1]


def page_ids_statement(
    conn: Connection,
    ds: Dataset,
    spec: FilterSpec,
    *,
    sort: str | None,
    descending: bool,
    offset: int,
    limit: int,
) -> Select[Any]:
    """The ids of one page of ``ds`` under ``spec``, sorted by ``sort`` then by the dataset's id.

    A sort on a metrics column (cost) reads the metrics table first, walking its index on
    (cost_usd, execution_id) and looking each execution up by its key, when every execution has
    its metrics row: the same rows in the same order as the dataset's LEFT JOIN (NULLs where the
    database puts them), without sorting the whole selection. Otherwise the join is sorted.
    """
    row_id = ds.order_by[0]
    order: list[ColumnElement[object]] = list(ds.order_by)
    from_ = ds.from_
    if sort is not None:
        key = ds.column(sort).expr
        order = [key.desc() if descending else key.asc(), *ds.order_by]
        metrics_key = getattr(key, "table", None) is execution_metrics
        if metrics_key and row_id is executions.c.id and _metrics_cover_every_execution(conn):
            from_ = execution_metrics.join(
                executions, executions.c.id == execution_metrics.c.execution_id
            )
            # the metrics' own id: the tie-break the index holds (the same value as the row's id)
            order = [order[0], execution_metrics.c.execution_id.asc()]
    stmt = filters.apply_filters(select(row_id).select_from(from_), spec, ds)
    return stmt.order_by(*order).limit(limit).offset(offset)


@dataclass(frozen=True)
class ExecutionDetail:
    """One execution as the evaluation-results file has it, and its interactions in order."""

    record: dict[str, object]
    trace: pd.DataFrame


def execution_detail(
    engine: Engine, *, execution_id: int, level: Privacy, secret: str
) -> ExecutionDetail:
    """The execution's row (prompt, response, grades, metrics) and its trace, both redacted at
    ``level`` exactly as their export files would be."""
    spec = FilterSpec(where=f"execution_id = {int(execution_id)}")
    found = rows_page(
        engine, dataset="evaluation-results", spec=spec, level=level, secret=secret, page_size=1
    )
    if found.rows.empty:
        raise NotFound(f"no execution {execution_id}")
    trace = rows_page(
        engine,
        dataset="agent-interactions",
        spec=spec,
        level=level,
        secret=secret,
        page_size=MAX_PAGE_SIZE,
    ).rows
    if not trace.empty:
        trace = trace.sort_values("seq", kind="stable").reset_index(drop=True)
    record = {str(k): v for k, v in found.rows.iloc[0].to_dict().items()}
    return ExecutionDetail(record=record, trace=trace)
