"""``queries`` behind a short ``st.cache_data``, keyed by database, dataset, the spec's JSON and
the data version.

The data version (``columnar.data_version``: tokens that every write to the executions replaces,
read with one primary-key lookup) is part of each key, so a cached figure is never shown after an
import, a seeding or a delete — from this process or any other.
"""

from __future__ import annotations

from typing import Final, Literal

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nano_export import columnar, queries, rows
from nano_export.db import get_engine
from nano_export.models import FilterSpec, Privacy

TTL_S = 30


def _spec(spec_json: str) -> FilterSpec:
    return FilterSpec.model_validate_json(spec_json)


#: Stands for "read the data version now" (a page that shows several figures reads it once).
_READ: Final = "read"


def data_version(db_url: str) -> str | None:
    """The data version of the executions now (``columnar.data_version``)."""
    return columnar.data_version(get_engine(db_url))


def _version(db_url: str, given: str | None = _READ) -> str | None:
    return data_version(db_url) if given == _READ else given


def overview(
    db_url: str, dataset: str, spec_json: str, version: str | None = _READ
) -> queries.Overview:
    """Summary, per-model table, latency histogram and runs over time of the selection.

    ``version``: the ``data_version`` the page read at its start; read here when not given.
    """
    return _overview(db_url, dataset, spec_json, _version(db_url, version))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _overview(db_url: str, dataset: str, spec_json: str, version: str | None) -> queries.Overview:
    return queries.overview(get_engine(db_url), dataset=dataset, spec=_spec(spec_json))


Chart = Literal["success_rate", "latency", "cost_per_run", "runs_over_time"]


def chart(
    kind: Chart, db_url: str, dataset: str, spec_json: str, version: str | None = _READ
) -> go.Figure:
    """One of Explore's figures of the selection (built once per selection and data version).

    Building a plotly figure takes longer than reading the cached overview it shows; the figure
    is only read afterwards (``st.plotly_chart`` serialises a copy), so sessions share it.
    """
    return _chart(kind, db_url, dataset, spec_json, _version(db_url, version))


@st.cache_resource(ttl=TTL_S, max_entries=128, show_spinner=False)
def _chart(
    kind: Chart, db_url: str, dataset: str, spec_json: str, version: str | None
) -> go.Figure:
    from nano_export.ui import charts

    found = _overview(db_url, dataset, spec_json, version)
    if kind == "success_rate":
        return charts.success_rate(found.by_model)
    if kind == "cost_per_run":
        return charts.cost_per_run(found.by_model)
    if kind == "latency":
        return charts.latency_distribution(found.latency_buckets)
    return charts.runs_over_time(found.runs_over_time)


def preview(
    db_url: str,
    dataset: str,
    spec_json: str,
    level: Privacy,
    secret: str,
    limit: int = 50,
    version: str | None = _READ,
) -> pd.DataFrame:
    """Redacted sample rows."""
    return _preview(db_url, dataset, spec_json, level, secret, limit, _version(db_url, version))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _preview(
    db_url: str,
    dataset: str,
    spec_json: str,
    level: Privacy,
    secret: str,
    limit: int,
    version: str | None,
) -> pd.DataFrame:
    return queries.preview(
        get_engine(db_url),
        dataset=dataset,
        spec=_spec(spec_json),
        level=level,
        secret=secret,
        limit=limit,
    )


def estimate(
    db_url: str,
    dataset: str,
    spec_json: str,
    columns: tuple[str, ...] | None,
    level: Privacy,
    secret: str,
) -> queries.Estimate:
    """Rows and approximate size of an export."""
    return _estimate(db_url, dataset, spec_json, columns, level, secret, _version(db_url))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _estimate(
    db_url: str,
    dataset: str,
    spec_json: str,
    columns: tuple[str, ...] | None,
    level: Privacy,
    secret: str,
    version: str | None,
) -> queries.Estimate:
    return queries.estimate(
        get_engine(db_url),
        dataset=dataset,
        spec=_spec(spec_json),
        columns=list(columns) if columns else None,
        level=level,
        secret=secret,
    )


def choices(db_url: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Filter choices present in the data: providers, models by provider, tests."""
    return _choices(db_url, _version(db_url))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _choices(db_url: str, version: str | None) -> tuple[list[str], dict[str, list[str]], list[str]]:
    engine = get_engine(db_url)
    return (
        queries.distinct_values(engine, field="provider"),
        queries.models_by_provider(engine),
        queries.distinct_values(engine, field="test"),
    )


LATENCY_EDGES = queries.LATENCY_EDGES


def latency_label(bucket: int) -> str:
    """A short label of bucket ``bucket`` of ``LATENCY_EDGES``: "<0.5s", "2–5s", "1–2m", "≥5m"."""

    def fmt(v: float) -> str:
        return f"{v / 60:g}m" if v >= 60 else f"{v:g}s"

    def num(v: float) -> str:
        return f"{v / 60:g}" if v >= 60 else f"{v:g}"

    edges = LATENCY_EDGES
    if bucket == 0:
        return f"<{fmt(edges[0])}"
    if bucket >= len(edges):
        return f"≥{fmt(edges[-1])}"
    lo, hi = edges[bucket - 1], edges[bucket]
    return f"{num(lo) if (lo >= 60) == (hi >= 60) else fmt(lo)}–{fmt(hi)}"


def latency_tick(bucket: int) -> str:
    """The axis label of a bucket: its upper edge ("≤2s", "≤1m"), or ">5m" for the last."""
    edges = LATENCY_EDGES
    if bucket >= len(edges):
        return ">" + latency_label(bucket)[1:]
    hi = edges[bucket]
    return f"≤{hi / 60:g}m" if hi >= 60 else f"≤{hi:g}s"


def latency_buckets(
    db_url: str, dataset: str, spec_json: str, version: str | None = _READ
) -> pd.DataFrame:
    """Runs per model and latency bucket (``LATENCY_EDGES``): model, bucket, runs.

    Part of the overview's one grouped scan (cached), not a query of its own.
    """
    return overview(db_url, dataset, spec_json, version).latency_buckets


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=64)
def rows_page(
    db_url: str,
    dataset: str,
    spec_json: str,
    level: Privacy,
    secret: str,
    *,
    page: int,
    sort: str | None,
    descending: bool,
    search: str | None,
) -> rows.RowsPage:
    """One redacted page of the selection (``rows.rows_page``)."""
    return rows.rows_page(
        get_engine(db_url),
        dataset=dataset,
        spec=_spec(spec_json),
        level=level,
        secret=secret,
        page=page,
        sort=sort,
        descending=descending,
        search=search,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=32)
def execution_detail(
    db_url: str, execution_id: int, level: Privacy, secret: str
) -> rows.ExecutionDetail:
    """One execution and its trace, redacted (``rows.execution_detail``)."""
    return rows.execution_detail(
        get_engine(db_url), execution_id=execution_id, level=level, secret=secret
    )
