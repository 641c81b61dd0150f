"""``queries`` behind a short ``st.cache_data``, keyed by database, dataset and the spec's JSON."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nano_export import queries
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
