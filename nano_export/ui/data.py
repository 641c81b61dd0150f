"""``queries`` behind a short ``st.cache_data``, keyed by database, dataset and the spec's JSON."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import Float, case, cast, func

from nano_export import queries
from nano_export.datasets import get_dataset
from nano_export.db import get_engine
from nano_export.models import FilterSpec, Privacy

TTL_S = 30


def _spec(spec_json: str) -> FilterSpec:
    return FilterSpec.model_validate_json(spec_json)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def overview(db_url: str, dataset: str, spec_json: str) -> queries.Overview:
    """Summary, per-model table, latency histogram and runs over time, from one grouped scan."""
    return queries.overview(get_engine(db_url), dataset=dataset, spec=_spec(spec_json))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def preview(
    db_url: str, dataset: str, spec_json: str, level: Privacy, secret: str, limit: int = 50
) -> pd.DataFrame:
    """Redacted sample rows."""
    return queries.preview(
        get_engine(db_url),
        dataset=dataset,
        spec=_spec(spec_json),
        level=level,
        secret=secret,
        limit=limit,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def estimate(
    db_url: str,
    dataset: str,
    spec_json: str,
    columns: tuple[str, ...] | None,
    level: Privacy,
    secret: str,
) -> queries.Estimate:
    """Rows and approximate size of an export."""
    return queries.estimate(
        get_engine(db_url),
        dataset=dataset,
        spec=_spec(spec_json),
        columns=list(columns) if columns else None,
        level=level,
        secret=secret,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def choices(db_url: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Filter choices present in the data: providers, models by provider, tests."""
    engine = get_engine(db_url)
    return (
        queries.distinct_values(engine, field="provider"),
        queries.models_by_provider(engine),
        queries.distinct_values(engine, field="test"),
    )


#: Upper edges (seconds) of the latency buckets: roughly logarithmic, so a long tail of slow runs
#: does not squeeze every typical run into the first bucket; the last bucket is open-ended.
LATENCY_EDGES: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


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


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latency_buckets(db_url: str, dataset: str, spec_json: str) -> pd.DataFrame:
    """Runs per model and latency bucket (``LATENCY_EDGES``), in SQL: model, bucket, runs."""
    ds = get_dataset(dataset)
    lat = queries._latency(ds)
    model = queries._expr(ds, "model")
    if lat is None or model is None:
        return pd.DataFrame(columns=["model", "bucket", "runs"])
    value = cast(lat, Float)
    bucket = case(
        *((value < edge, i) for i, edge in enumerate(LATENCY_EDGES)), else_=len(LATENCY_EDGES)
    )
    stmt = (
        queries._lean(ds, _spec(spec_json), model.label("model"), bucket.label("bucket"))
        .add_columns(func.count().label("runs"))
        .where(lat.is_not(None))
        .group_by(model, bucket)
    )
    with get_engine(db_url).connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    df = pd.DataFrame.from_records(rows, columns=["model", "bucket", "runs"])
    return df.astype({"bucket": int, "runs": int}) if len(df) else df
