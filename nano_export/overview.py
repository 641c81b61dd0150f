"""What the Explore page shows about a selection, built from a small grouped table.

Both ways of computing it — one GROUP BY in SQL (``queries.sql_overview``) and the in-memory
columns (``columnar.overview``) — produce the same grouped table: one row per period, latency
bucket, log-latency bucket, provider and model with ``rows``, ``ok``, ``n_lat``, ``sum_lat`` and
``cost``. ``from_groups`` turns it into the summary and the frames, so both give the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

#: The columns of the grouped table ``from_groups`` reads.
GROUP_COLUMNS = [
    "provider",
    "model",
    "period",
    "bucket",
    "log_bucket",
    "rows",
    "ok",
    "n_lat",
    "sum_lat",
    "cost",
]


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


#: Upper edges (seconds) of the Explore page's latency buckets: roughly logarithmic, so a long tail
#: of slow runs does not squeeze every typical run into the first bucket; the last is open-ended.
LATENCY_EDGES: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
LATENCY_BUCKET_COLUMNS = ["model", "bucket", "runs"]


@dataclass(frozen=True)
class Overview:
    """Everything the Explore page shows about a selection, from one grouped scan."""

    summary: Summary
    by_model: pd.DataFrame
    latency_histogram: pd.DataFrame
    runs_over_time: pd.DataFrame
    #: Runs per model in the roughly logarithmic ``LATENCY_EDGES`` buckets: model, bucket, runs.
    latency_buckets: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=LATENCY_BUCKET_COLUMNS)
    )


BY_MODEL_COLUMNS = [
    "provider",
    "model",
    "runs",
    "successes",
    "success_rate",
    "mean_latency_s",
    "total_cost_usd",
    "cost_per_run_usd",
]
HISTOGRAM_COLUMNS = ["model", "bucket_start", "bucket_end", "runs"]
OVER_TIME_COLUMNS = ["period", "provider", "runs"]


def from_groups(
    groups: pd.DataFrame,
    *,
    lo: float,
    width: float,
    median: float | None,
    has_success: bool,
    has_cost: bool,
) -> Overview:
    """The overview of a selection from its grouped table (``GROUP_COLUMNS``).

    ``lo`` and ``width`` place the equal-width latency buckets; ``median`` is the exact median
    latency, computed by the caller over the rows.
    """
    return Overview(
        summary=Summary(
            rows=int(groups["rows"].sum()),
            successes=int(groups["ok"].sum()) if has_success else None,
            total_cost=_sum_or_none(groups["cost"]) if has_cost else None,
            median_latency=median,
        ),
        by_model=_by_model_frame(groups),
        latency_histogram=_histogram_frame(groups, lo, width),
        runs_over_time=_over_time_frame(groups),
        latency_buckets=_log_bucket_frame(groups),
    )


def _runs_per_bucket(groups: pd.DataFrame, column: str) -> pd.DataFrame:
    """Runs per model and bucket (``column`` of the grouped rows, as int); empty without any."""
    known = groups.dropna(subset=[column])
    if known.empty:
        return pd.DataFrame(columns=LATENCY_BUCKET_COLUMNS)
    df = (
        known.assign(bucket=known[column].astype(int))
        .groupby(["model", "bucket"], as_index=False, sort=True)
        .agg(runs=("rows", "sum"))
    )
    df["runs"] = df["runs"].astype(int)
    return df


def _log_bucket_frame(groups: pd.DataFrame) -> pd.DataFrame:
    df = _runs_per_bucket(groups, "log_bucket")
    return df[LATENCY_BUCKET_COLUMNS].reset_index(drop=True)


def _sum_or_none(values: pd.Series) -> float | None:
    present = values.dropna()
    return math.fsum(present) if len(present) else None


def _by_model_frame(groups: pd.DataFrame) -> pd.DataFrame:
    if groups.empty:
        return pd.DataFrame(columns=BY_MODEL_COLUMNS)
    agg = groups.groupby(["provider", "model"], as_index=False, sort=True).agg(
        runs=("rows", "sum"),
        successes=("ok", lambda s: s.sum(min_count=1)),
        n_lat=("n_lat", "sum"),
        sum_lat=("sum_lat", lambda s: s.sum(min_count=1)),
        total_cost_usd=("cost", lambda s: s.sum(min_count=1)),
    )
    agg["runs"] = agg["runs"].astype(int)
    agg["mean_latency_s"] = agg["sum_lat"] / agg["n_lat"].where(agg["n_lat"] > 0)
    agg["success_rate"] = agg["successes"] / agg["runs"]
    agg["cost_per_run_usd"] = agg["total_cost_usd"] / agg["runs"]
    return agg[BY_MODEL_COLUMNS].reset_index(drop=True)


def _histogram_frame(groups: pd.DataFrame, lo: float, width: float) -> pd.DataFrame:
    df = _runs_per_bucket(groups, "bucket")
    if df.empty:
        return pd.DataFrame(columns=HISTOGRAM_COLUMNS)
    df["bucket_start"] = lo + df["bucket"] * width
    df["bucket_end"] = df["bucket_start"] + width
    return df[HISTOGRAM_COLUMNS].reset_index(drop=True)


def _over_time_frame(groups: pd.DataFrame) -> pd.DataFrame:
    if groups.empty:
        return pd.DataFrame(columns=OVER_TIME_COLUMNS)
    df = groups.groupby(["period", "provider"], as_index=False, sort=False).agg(
        runs=("rows", "sum")
    )
    df["period"] = pd.to_datetime(df["period"].astype(str))
    df["runs"] = df["runs"].astype(int)
    return df[OVER_TIME_COLUMNS].sort_values(["period", "provider"]).reset_index(drop=True)


def empty(has_success: bool, has_cost: bool) -> Overview:
    """The overview of a selection without rows."""
    return Overview(
        summary=Summary(
            rows=0,
            successes=0 if has_success else None,
            total_cost=None,
            median_latency=None,
        ),
        by_model=pd.DataFrame(columns=BY_MODEL_COLUMNS),
        latency_histogram=pd.DataFrame(columns=HISTOGRAM_COLUMNS),
        runs_over_time=pd.DataFrame(columns=OVER_TIME_COLUMNS),
    )
