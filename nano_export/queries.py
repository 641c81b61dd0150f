"""Counts, chart aggregates and previews for the dashboard — all computed in SQL.

Every function takes a dataset name and a ``FilterSpec`` and narrows the dataset's FROM clause with
the conditions of ``filters.compile_filters``: the chart, the count, the preview and the export
select the same rows. Nothing here loads a table into memory: ``overview`` makes one GROUP BY scan
whose few hundred groups give the summary, the per-model table, the histogram and runs over time;
the median is one ORDER BY … LIMIT/OFFSET lookup that walks an index.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Connection, Date, Engine, Float, Integer, case, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from nano_export import columnar, filters, privacy
from nano_export.datasets import Dataset, get_dataset
from nano_export.db import read_connection
from nano_export.models import FilterSpec, Privacy
from nano_export.overview import (
    BY_MODEL_COLUMNS,
    HISTOGRAM_COLUMNS,
    LATENCY_BUCKET_COLUMNS,
    LATENCY_EDGES,
    OVER_TIME_COLUMNS,
    Overview,
    Summary,
    empty,
    from_groups,
)
from nano_export.schema import executions

__all__ = [
    "BY_MODEL_COLUMNS",
    "HISTOGRAM_COLUMNS",
    "LATENCY_BUCKET_COLUMNS",
    "LATENCY_EDGES",
    "OVER_TIME_COLUMNS",
    "Overview",
    "Summary",
]

log = logging.getLogger(__name__)

Grain = Literal["day", "week", "month"]


@dataclass(frozen=True)
class Estimate:
    """What an export of a selection would be: rows and an approximate size in bytes."""

    rows: int
    approx_bytes: int


def _expr(ds: Dataset, name: str) -> ColumnElement[Any] | None:
    """A column (or filter field) of the dataset by name; None when it has none."""
    for col in ds.columns:
        if col.name == name:
            return col.expr
    return ds.filter_fields.get(name)


def _latency(ds: Dataset) -> ColumnElement[Any] | None:
    found = _expr(ds, "execution_time_s")
    return found if found is not None else _expr(ds, "duration_s")


def _need(ds: Dataset, name: str) -> ColumnElement[Any]:
    expr = _expr(ds, name)
    if expr is None:
        raise KeyError(f"dataset {ds.name!r} has no column {name!r}")
    return expr


def count_rows(engine: Engine, *, dataset: str, spec: FilterSpec) -> int:
    """How many rows of ``dataset`` the spec selects."""
    found = columnar.count(engine, dataset=dataset, spec=spec)
    if found is not None:
        return found
    ds = get_dataset(dataset)
    with read_connection(engine) as conn:
        return int(conn.execute(filters.lean_select(ds, spec, func.count())).scalar_one())


def _success_int(ds: Dataset) -> ColumnElement[Any] | None:
    success = _expr(ds, "success")
    if success is None:
        return None
    return case((success.is_(True), 1), else_=0)


def _median(conn: Connection, ds: Dataset, spec: FilterSpec, lat: Any, n: int) -> float | None:
    """The exact median of ``n`` non-null latencies: one ORDER BY … LIMIT/OFFSET lookup.

    With an index on the latency column the database walks it to the middle instead of sorting.
    """
    if n == 0:
        return None
    stmt = (
        filters.lean_select(ds, spec, lat.label("v"))
        .where(lat.is_not(None))
        .order_by(lat)
        .offset((n - 1) // 2)
        .limit(1 if n % 2 else 2)
    )
    values = [float(v) for v in conn.execute(stmt).scalars()]
    return sum(values) / len(values)


def median_latency(engine: Engine, *, dataset: str, spec: FilterSpec) -> float | None:
    """The median latency of the selection (None without latencies), portable across backends."""
    ds = get_dataset(dataset)
    lat = _latency(ds)
    if lat is None:
        return None
    with read_connection(engine) as conn:
        n = int(conn.execute(filters.lean_select(ds, spec, func.count(lat))).scalar_one())
        return _median(conn, ds, spec, lat, n)


def overview(
    engine: Engine,
    *,
    dataset: str,
    spec: FilterSpec,
    bins: int = 24,
    grain: Grain | None = None,
) -> Overview:
    """Summary, per-model table, latency histogram and runs over time of the selection.

    From the in-memory columns when they cover the dataset and the spec (``columnar.overview``:
    checked fresh against the database on every call), otherwise in SQL (``sql_overview``).
    Both give the same figures.
    """
    found = columnar.overview(engine, dataset=dataset, spec=spec, bins=bins, grain=grain)
    if found is not None:
        return found
    return sql_overview(engine, dataset=dataset, spec=spec, bins=bins, grain=grain)


def sql_overview(
    engine: Engine,
    *,
    dataset: str,
    spec: FilterSpec,
    bins: int = 24,
    grain: Grain | None = None,
) -> Overview:
    """``overview`` computed in SQL, whatever the spec (a free-text ``where`` included).

    Three statements on one connection: the bounds of ``started_at`` and of the latency (see
    ``_bounds``), one GROUP BY provider, model, period and latency bucket that
    carries counts, successes and sums, and the exact median. Every figure is then a sum over the
    small grouped result, so it equals the direct aggregate over the selected rows.
    """
    ds = get_dataset(dataset)
    provider, model = _need(ds, "provider"), _need(ds, "model")
    started = _need(ds, "started_at")
    ok, lat, cost = _success_int(ds), _latency(ds), _expr(ds, "cost_usd")
    with read_connection(engine) as conn:
        first, last, *lat_range = conn.execute(_bounds(ds, spec, started, lat)).one()
        if first is None:
            return empty(ok is not None, cost is not None)
        if grain is None:
            span = (pd.Timestamp(last) - pd.Timestamp(first)).days
            grain = "day" if span <= 120 else "week" if span <= 730 else "month"
        period = _period(engine, started, grain)
        lo = hi = width = 0.0
        bucket: ColumnElement[Any] = literal(None)
        log_bucket: ColumnElement[Any] = literal(None)
        if lat is not None and lat_range[0] is not None:
            lo, hi = float(lat_range[0]), float(lat_range[1])
            width = (hi - lo) / bins if hi > lo else 1.0
            bucket = _bucket(engine, lat, lo, width, bins)
            value = cast(lat, Float)
            log_bucket = case(
                (value.is_(None), literal(None)),
                *((value < edge, i) for i, edge in enumerate(LATENCY_EDGES)),
                else_=len(LATENCY_EDGES),
            )
        none = literal(None)
        lat_cols: list[Any] = [none, none] if lat is None else [func.count(lat), func.sum(lat)]
        stmt = filters.lean_select(
            ds,
            spec,
            provider.label("provider"),
            model.label("model"),
            period.label("period"),
            bucket.label("bucket"),
            log_bucket.label("log_bucket"),
            func.count().label("rows"),
            (func.sum(ok) if ok is not None else none).label("ok"),
            lat_cols[0].label("n_lat"),
            lat_cols[1].label("sum_lat"),
            (func.sum(cost) if cost is not None else none).label("cost"),
        ).group_by(period, bucket, log_bucket, provider, model)  # not an index's order: see below
        # (SQLite picks an index in GROUP BY order even when it is not covering; in this order
        # none matches, so it scans the covering ix_executions_explore instead of the table.)
        groups = pd.DataFrame.from_records(
            [tuple(row) for row in conn.execute(stmt)], columns=list(stmt.selected_columns.keys())
        )
        for name in ("rows", "ok", "n_lat", "sum_lat", "cost"):
            groups[name] = pd.to_numeric(groups[name], errors="coerce")
        n_lat = int(groups["n_lat"].sum()) if lat is not None else 0
        median = _median(conn, ds, spec, lat, n_lat) if lat is not None else None
    return from_groups(
        groups,
        lo=lo,
        width=width,
        median=median,
        has_success=ok is not None,
        has_cost=cost is not None,
    )


def _bounds(ds: Dataset, spec: FilterSpec, started: Any, lat: Any) -> Any:
    """One row: min and max of ``started`` (and of ``lat``) over the selection.

    For all rows each is its own subquery, which both databases answer from one end of an index.
    With filters such a walk may look up row after row that does not match (SQLite, without
    statistics, even prefers that), so then it is one aggregate over one scan.
    """
    aggs = [func.min(started), func.max(started)]
    if lat is not None:
        aggs += [func.min(lat), func.max(lat)]
    if filters.compile_filters(spec, ds):
        return filters.lean_select(ds, spec, *aggs)
    return select(*(filters.lean_select(ds, spec, agg).scalar_subquery() for agg in aggs))


def _bucket(
    engine: Engine, lat: ColumnElement[Any], lo: float, width: float, bins: int
) -> ColumnElement[Any]:
    """The 0-based equal-width bucket of ``lat`` in [lo, lo + bins*width]; NULL for NULL."""
    scaled = (cast(lat, Float) - lo) / width
    # Non-negative, so truncation is floor; PostgreSQL's CAST rounds, so floor() there.
    raw = cast(scaled, Integer) if engine.dialect.name == "sqlite" else func.floor(scaled)
    return case((raw >= bins, bins - 1), else_=raw)


def summary(engine: Engine, *, dataset: str, spec: FilterSpec) -> Summary:
    """Rows, successes, total cost and median latency of the selection."""
    return overview(engine, dataset=dataset, spec=spec).summary


def by_model(engine: Engine, *, dataset: str, spec: FilterSpec) -> pd.DataFrame:
    """Per provider and model: runs, success rate, mean latency, total cost and cost per run."""
    return overview(engine, dataset=dataset, spec=spec).by_model


def latency_histogram(
    engine: Engine, *, dataset: str, spec: FilterSpec, bins: int = 24
) -> pd.DataFrame:
    """Latency counts per model in ``bins`` equal-width buckets: model, bucket_start, runs."""
    return overview(engine, dataset=dataset, spec=spec, bins=bins).latency_histogram


def _period(engine: Engine, started: ColumnElement[Any], grain: Grain) -> ColumnElement[Any]:
    """The first day of ``started``'s period, in UTC."""
    if engine.dialect.name == "sqlite":
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): the day is a prefix of the text,
        # cheaper than date() and equal to it on that format.
        if grain == "month":
            return func.substr(started, 1, 7).concat("-01")
        if grain == "week":  # the Monday of the week: next Sunday (or today), minus six days
            return func.date(started, "weekday 0", "-6 days")
        return func.substr(started, 1, 10)
    return cast(func.date_trunc(grain, func.timezone("UTC", started)), Date)


def runs_over_time(
    engine: Engine, *, dataset: str, spec: FilterSpec, grain: Grain | None = None
) -> pd.DataFrame:
    """Rows per period and provider: period (date), provider, runs. Grain follows the span."""
    return overview(engine, dataset=dataset, spec=spec, grain=grain).runs_over_time


def preview(
    engine: Engine,
    *,
    dataset: str,
    spec: FilterSpec,
    level: Privacy,
    secret: str,
    limit: int = 50,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The first ``limit`` rows of the selection, redacted by ``privacy.apply_policy``.

    When the in-memory columns can select (``columnar.first_ids``), the rows are looked up by id.
    """
    ds = get_dataset(dataset)
    ids = columnar.first_ids(engine, dataset=dataset, spec=spec, limit=limit)
    if ids is not None:
        stmt = ds.select(columns).where(executions.c.id.in_(ids))
    else:
        stmt = filters.apply_filters(ds.select(columns), spec, ds).limit(limit)
    with read_connection(engine) as conn:
        result = conn.execute(stmt)
        df = pd.DataFrame(result.all(), columns=list(result.keys()))
    return privacy.apply_policy(df, level=level, secret=secret)


def estimate(
    engine: Engine,
    *,
    dataset: str,
    spec: FilterSpec,
    columns: list[str] | None = None,
    level: Privacy = "standard",
    secret: str = "",
    sample: int = 200,
) -> Estimate:
    """Rows from a COUNT and an approximate CSV size from a redacted sample of rows."""
    rows = count_rows(engine, dataset=dataset, spec=spec)
    if rows == 0:
        return Estimate(rows=0, approx_bytes=0)
    df = preview(
        engine,
        dataset=dataset,
        spec=spec,
        level=level,
        secret=secret,
        limit=sample,
        columns=columns,
    )
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    text = buf.getvalue()
    header, _, body = text.partition("\n")
    per_row = len(body.encode("utf-8")) / max(len(df), 1)
    return Estimate(rows=rows, approx_bytes=int(len(header) + 1 + per_row * rows))


def distinct_values(engine: Engine, *, field: filters.ValueField) -> list[str]:
    """The values a filter widget offers: providers, models or test ids present in the data."""
    found = columnar.distinct(engine, "test_id" if field == "test" else field)
    return found if found is not None else filters.stored_values(engine, field=field)


def models_by_provider(engine: Engine) -> dict[str, list[str]]:
    """Each provider's models, for grouping model choices."""
    out: dict[str, list[str]] = {}
    found = columnar.pairs(engine)
    if found is not None:
        for provider, model in found:
            out.setdefault(provider, []).append(model)
        return out
    stmt = (
        select(executions.c.provider, executions.c.model)
        .distinct()
        .order_by(executions.c.provider, executions.c.model)
    )
    with read_connection(engine) as conn:
        for provider, model in conn.execute(stmt):
            out.setdefault(str(provider), []).append(str(model))
    return out
