"""Counts, chart aggregates and previews for the dashboard — all computed in SQL.

Every function takes a dataset name and a ``FilterSpec`` and narrows the dataset's FROM clause with
``filters.apply_filters``: the chart, the count, the preview and the export select the same rows.
Nothing here loads a table into memory; aggregates are GROUP BY queries, the median is one
ORDER BY … LIMIT/OFFSET lookup, histograms are bucketed in SQL.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Date, Engine, Float, Integer, case, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from nano_export import filters, privacy
from nano_export.datasets import Dataset, get_dataset
from nano_export.models import FilterSpec, Privacy
from nano_export.schema import executions

log = logging.getLogger(__name__)

Grain = Literal["day", "week", "month"]


@dataclass(frozen=True)
class Summary:
    """Headline numbers of a selection."""

    rows: int
    successes: int | None
    total_cost: float | None
    median_latency: float | None

    @property
    def success_rate(self) -> float | None:
        """Share of successful rows (0..1), None without rows or without a success column."""
        if not self.rows or self.successes is None:
            return None
        return self.successes / self.rows


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


def _filtered(ds: Dataset, spec: FilterSpec, *cols: Any) -> Any:
    return filters.apply_filters(select(*cols).select_from(ds.from_), spec, ds)


def count_rows(engine: Engine, *, dataset: str, spec: FilterSpec) -> int:
    """How many rows of ``dataset`` the spec selects."""
    ds = get_dataset(dataset)
    with engine.connect() as conn:
        return int(conn.execute(_filtered(ds, spec, func.count())).scalar_one())


def _success_int(ds: Dataset) -> ColumnElement[Any] | None:
    success = _expr(ds, "success")
    if success is None:
        return None
    return case((success.is_(True), 1), else_=0)


def median_latency(engine: Engine, *, dataset: str, spec: FilterSpec) -> float | None:
    """The median latency of the selection (None without latencies), portable across backends."""
    ds = get_dataset(dataset)
    lat = _latency(ds)
    if lat is None:
        return None
    with engine.connect() as conn:
        n = int(conn.execute(_filtered(ds, spec, func.count(lat))).scalar_one())
        if n == 0:
            return None
        stmt = (
            _filtered(ds, spec, lat.label("v"))
            .where(lat.is_not(None))
            .order_by(lat)
            .offset((n - 1) // 2)
            .limit(1 if n % 2 else 2)
        )
        values = [float(v) for v in conn.execute(stmt).scalars()]
    return sum(values) / len(values)


def summary(engine: Engine, *, dataset: str, spec: FilterSpec) -> Summary:
    """Rows, successes, total cost and median latency of the selection."""
    ds = get_dataset(dataset)
    ok = _success_int(ds)
    cost = _expr(ds, "cost_usd")
    cols: list[Any] = [func.count().label("rows")]
    cols.append(func.sum(ok).label("ok") if ok is not None else literal(None).label("ok"))
    cols.append(func.sum(cost).label("cost") if cost is not None else literal(None).label("cost"))
    with engine.connect() as conn:
        row = conn.execute(_filtered(ds, spec, *cols)).one()
    rows = int(row.rows)
    return Summary(
        rows=rows,
        successes=None if ok is None else int(row.ok or 0),
        total_cost=None if cost is None or row.cost is None else float(row.cost),
        median_latency=median_latency(engine, dataset=dataset, spec=spec) if rows else None,
    )


def by_model(engine: Engine, *, dataset: str, spec: FilterSpec) -> pd.DataFrame:
    """Per provider and model: runs, success rate, mean latency, total cost and cost per run."""
    ds = get_dataset(dataset)
    provider, model = _need(ds, "provider"), _need(ds, "model")
    ok, lat, cost = _success_int(ds), _latency(ds), _expr(ds, "cost_usd")
    none = literal(None)
    stmt = _filtered(
        ds,
        spec,
        provider.label("provider"),
        model.label("model"),
        func.count().label("runs"),
        (func.sum(ok) if ok is not None else none).label("successes"),
        (func.avg(lat) if lat is not None else none).label("mean_latency_s"),
        (func.sum(cost) if cost is not None else none).label("total_cost_usd"),
    ).group_by(provider, model)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(stmt).mappings().all())
    if df.empty:
        return pd.DataFrame(
            columns=[
                "provider",
                "model",
                "runs",
                "successes",
                "success_rate",
                "mean_latency_s",
                "total_cost_usd",
                "cost_per_run_usd",
            ]
        )
    for name in ("successes", "mean_latency_s", "total_cost_usd"):
        df[name] = pd.to_numeric(df[name], errors="coerce")
    df["success_rate"] = df["successes"] / df["runs"]
    df["cost_per_run_usd"] = df["total_cost_usd"] / df["runs"]
    cols = ["provider", "model", "runs", "successes", "success_rate", "mean_latency_s"]
    cols += ["total_cost_usd", "cost_per_run_usd"]
    return df[cols].sort_values(["provider", "model"]).reset_index(drop=True)


def latency_histogram(
    engine: Engine, *, dataset: str, spec: FilterSpec, bins: int = 24
) -> pd.DataFrame:
    """Latency counts per model in ``bins`` equal-width buckets: model, bucket_start, runs."""
    ds = get_dataset(dataset)
    lat, model = _latency(ds), _need(ds, "model")
    empty = pd.DataFrame(columns=["model", "bucket_start", "bucket_end", "runs"])
    if lat is None:
        return empty
    with engine.connect() as conn:
        lo, hi = conn.execute(_filtered(ds, spec, func.min(lat), func.max(lat))).one()
        if lo is None:
            return empty
        lo, hi = float(lo), float(hi)
        width = (hi - lo) / bins if hi > lo else 1.0
        scaled = (cast(lat, Float) - lo) / width
        # Non-negative, so truncation is floor; PostgreSQL's CAST rounds, so floor() there.
        raw = cast(scaled, Integer) if engine.dialect.name == "sqlite" else func.floor(scaled)
        bucket = case((raw >= bins, bins - 1), else_=raw)
        stmt = (
            _filtered(ds, spec, model.label("model"), bucket.label("bucket"), func.count())
            .where(lat.is_not(None))
            .group_by(model, bucket)
        )
        rows = conn.execute(stmt).all()
    df = pd.DataFrame(rows, columns=["model", "bucket", "runs"])
    df["bucket"] = df["bucket"].astype(int)
    df["bucket_start"] = lo + df["bucket"] * width
    df["bucket_end"] = df["bucket_start"] + width
    df["runs"] = df["runs"].astype(int)
    return df[["model", "bucket_start", "bucket_end", "runs"]].sort_values(
        ["model", "bucket_start"]
    )


def _period(engine: Engine, started: ColumnElement[Any], grain: Grain) -> ColumnElement[Any]:
    if engine.dialect.name == "sqlite":
        if grain == "month":
            return func.strftime("%Y-%m-01", started)
        if grain == "week":  # the Monday of the week: next Sunday (or today), minus six days
            return func.date(started, "weekday 0", "-6 days")
        return func.date(started)
    return cast(func.date_trunc(grain, started), Date)


def runs_over_time(
    engine: Engine, *, dataset: str, spec: FilterSpec, grain: Grain | None = None
) -> pd.DataFrame:
    """Rows per period and provider: period (date), provider, runs. Grain follows the span."""
    ds = get_dataset(dataset)
    started, provider = _need(ds, "started_at"), _need(ds, "provider")
    with engine.connect() as conn:
        if grain is None:
            lo, hi = conn.execute(_filtered(ds, spec, func.min(started), func.max(started))).one()
            span = (pd.Timestamp(hi) - pd.Timestamp(lo)).days if lo is not None else 0
            grain = "day" if span <= 120 else "week" if span <= 730 else "month"
        period = _period(engine, started, grain)
        stmt = _filtered(
            ds, spec, period.label("period"), provider.label("provider"), func.count()
        ).group_by(period, provider)
        rows = conn.execute(stmt).all()
    df = pd.DataFrame(rows, columns=["period", "provider", "runs"])
    df["period"] = pd.to_datetime(df["period"].astype(str))
    df["runs"] = df["runs"].astype(int)
    return df.sort_values(["period", "provider"]).reset_index(drop=True)


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
    """The first ``limit`` rows of the selection, redacted by ``privacy.apply_policy``."""
    ds = get_dataset(dataset)
    stmt = filters.apply_filters(ds.select(columns), spec, ds).limit(limit)
    with engine.connect() as conn:
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


def distinct_values(engine: Engine, *, field: Literal["provider", "model", "test"]) -> list[str]:
    """The values a filter widget offers: providers, models or test ids present in the data."""
    column = {
        "provider": executions.c.provider,
        "model": executions.c.model,
        "test": executions.c.test_id,
    }[field]
    stmt = select(column).distinct().where(column.is_not(None)).order_by(column)
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(stmt).scalars()]


def models_by_provider(engine: Engine) -> dict[str, list[str]]:
    """Each provider's models, for grouping model choices."""
    stmt = (
        select(executions.c.provider, executions.c.model)
        .distinct()
        .order_by(executions.c.provider, executions.c.model)
    )
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for provider, model in conn.execute(stmt):
            out.setdefault(str(provider), []).append(str(model))
    return out
