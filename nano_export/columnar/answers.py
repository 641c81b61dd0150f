"""Explore's answers from the in-memory columns: selections, counts, choices and the overview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from nano_export import filters
from nano_export.columnar.store import Columns, IntArray, columns_for
from nano_export.datasets import Dataset, get_dataset
from nano_export.models import FilterSpec
from nano_export.overview import GROUP_COLUMNS, LATENCY_EDGES, Overview, empty, from_groups
from nano_export.schema import execution_metrics as m
from nano_export.schema import executions as e

_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The dataset fields the columns stand for: a dataset is covered when each is this column.
_FIELDS = {
    "provider": e.c.provider,
    "model": e.c.model,
    "test_id": e.c.test_id,
    "test_name": e.c.test_name,
    "started_at": e.c.started_at,
    "success": e.c.success,
}
#: Group keys up to this many values are counted with a dense ``bincount``; more are sorted.
_DENSE_KEYS = 4_000_000


# ---- selections --------------------------------------------------------------------------------


def _covers(ds: Dataset) -> bool:
    """Whether the dataset's filter fields and Explore's columns are the columns kept here."""
    names = {c.name: c.expr for c in ds.columns}
    fields_ok = all(ds.filter_fields.get(k) is col for k, col in _FIELDS.items())
    latency = names.get("execution_time_s")
    cost = names.get("cost_usd")
    in_id_order = len(ds.order_by) == 1 and ds.order_by[0] is e.c.id  # what first_ids gives
    return (
        fields_ok
        and in_id_order
        and latency is e.c.execution_time_s
        and names.get("provider") is e.c.provider
        and names.get("model") is e.c.model
        and names.get("success") is e.c.success
        and (cost is None or cost is m.c.cost_usd)
    )


def _take(values: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None) -> npt.NDArray[Any]:
    """The selected rows of ``values``; all of them, uncopied, for ``None``."""
    return values if mask is None else values[mask]


def _micros_of(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _isin(cols: Columns, name: str, wanted: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    chosen = set(wanted)
    codes = [i for i, v in enumerate(cols.values[name]) if v in chosen]
    return np.isin(cols.codes[name], np.asarray(codes, dtype=np.int32))


def _mask(cols: Columns, spec: FilterSpec) -> npt.NDArray[np.bool_]:
    """Which rows the spec (without a ``where``) selects."""
    mask = np.ones(cols.rows, dtype=np.bool_)
    if spec.provider:
        mask &= _isin(cols, "provider", spec.provider)
    if spec.model:
        mask &= _isin(cols, "model", spec.model)
    if spec.test:
        mask &= _isin(cols, "test_id", spec.test) | _isin(cols, "test_name", spec.test)
    lower, upper, inclusive = filters.time_bounds(spec)
    if lower is not None:
        mask &= cols.started_us >= _micros_of(lower)
    if upper is not None:
        edge = _micros_of(upper)
        mask &= cols.started_us <= edge if inclusive else cols.started_us < edge
    if spec.success is not None:
        mask &= cols.success == spec.success
    return mask


def selection(
    engine: Engine, *, dataset: str, spec: FilterSpec
) -> tuple[Columns, npt.NDArray[np.bool_], bool] | None:
    """The current columns, the rows ``spec`` selects and whether the dataset has a cost column.

    None when the columns cannot answer: a ``where``, a dataset they do not cover, or a database
    where they are not kept. An invalid spec raises InvalidFilter, as in SQL.
    """
    ds = get_dataset(dataset)
    filters.compile_filters(spec, ds)  # the same checks (and errors) as the SQL path
    if (spec.where and spec.where.strip()) or not _covers(ds):
        return None
    cols = columns_for(engine)
    if cols is None:
        return None
    has_cost = any(c.name == "cost_usd" for c in ds.columns)
    return cols, _mask(cols, spec), has_cost


def count(engine: Engine, *, dataset: str, spec: FilterSpec) -> int | None:
    """How many rows the spec selects, or None when the columns cannot answer."""
    found = selection(engine, dataset=dataset, spec=spec)
    return None if found is None else int(np.count_nonzero(found[1]))


def first_ids(engine: Engine, *, dataset: str, spec: FilterSpec, limit: int) -> list[int] | None:
    """The ids of the first ``limit`` selected rows in id order, or None (see ``selection``)."""
    found = selection(engine, dataset=dataset, spec=spec)
    if found is None:
        return None
    cols, mask, _ = found
    return [int(i) for i in cols.ids[np.flatnonzero(mask)[:limit]]]


def distinct(engine: Engine, name: str) -> list[str] | None:
    """The values present in text column ``name``, sorted; None where the columns are not kept."""
    cols = columns_for(engine)
    if cols is None:
        return None
    present = np.unique(cols.codes[name])
    return sorted(cols.values[name][i] for i in present if i >= 0)


def pairs(engine: Engine) -> list[tuple[str, str]] | None:
    """The (provider, model) pairs present, sorted; None where the columns are not kept."""
    cols = columns_for(engine)
    if cols is None:
        return None
    if not cols._pairs and cols.rows:
        n_models = max(len(cols.values["model"]), 1)
        key = np.unique(cols.codes["provider"].astype(np.int64) * n_models + cols.codes["model"])
        prov, model = cols.values["provider"], cols.values["model"]
        cols._pairs.extend(sorted((prov[k // n_models], model[k % n_models]) for k in key))
    return list(cols._pairs)


# ---- the overview ------------------------------------------------------------------------------


def overview(
    engine: Engine, *, dataset: str, spec: FilterSpec, bins: int = 24, grain: str | None = None
) -> Overview | None:
    """``queries.overview`` from the columns, or None when they cannot answer (see ``selection``).

    The same grouped table as the SQL path's GROUP BY, built with ``bincount``, then the same
    frames (``overview.from_groups``); the median is ``numpy.median`` over the selected latencies.
    """
    found = selection(engine, dataset=dataset, spec=spec)
    if found is None:
        return None
    cols, selected, has_cost = found
    if not selected.any():
        return empty(True, has_cost)
    mask = None if selected.all() else selected  # all rows: no copies
    day = _take(cols.derived["day"], mask)
    first, last = int(day.min()), int(day.max())
    if grain is None:
        # Whole days between the first and the last start, as the SQL path counts them.
        started = _take(cols.started_us, mask)
        span = (int(started.max()) - int(started.min())) // _DAY_US
        grain = "day" if span <= 120 else "week" if span <= 730 else "month"
    latency = _take(cols.latency, mask)
    known = ~np.isnan(latency)
    lo = width = 0.0
    n_buckets = 1  # only "no latency" without any latency
    bucket = np.zeros(len(latency), dtype=np.int64)
    median = None
    if known.any():
        values = latency[known]
        lo, hi = float(values.min()), float(values.max())
        width = (hi - lo) / bins if hi > lo else 1.0
        with np.errstate(invalid="ignore"):
            raw = np.floor((latency - lo) / width)
        bucket = np.where(known, np.minimum(np.nan_to_num(raw), bins - 1), bins).astype(np.int64)
        n_buckets = bins + 1
        median = float(np.median(values))
    log_bucket = _take(cols.derived["log_bucket"], mask).astype(np.int64)
    period, labels = _periods(day, first, last, grain)
    groups = _groups(cols, mask, period, labels, bucket, n_buckets, log_bucket, has_cost)
    return from_groups(
        groups, lo=lo, width=width, median=median, has_success=True, has_cost=has_cost
    )


def _periods(
    day: npt.NDArray[Any], first: int, last: int, grain: str
) -> tuple[IntArray, list[str]]:
    """Each row's period as a compact index, and each index's first day ('YYYY-MM-DD', UTC)."""
    every_day = np.arange(first, last + 1, dtype=np.int64)
    if grain == "week":  # 1970-01-01 was a Thursday: the Monday is 3 days before
        starts = every_day - (every_day + 3) % 7
    elif grain == "month":
        months = every_day.astype("datetime64[D]").astype("datetime64[M]")
        starts = months.astype("datetime64[D]").astype(np.int64)
    else:
        starts = every_day
    unique, index = np.unique(starts, return_inverse=True)
    labels = [str(d) for d in unique.astype("datetime64[D]")]
    return index.astype(np.int64)[day - first], labels


def _groups(
    cols: Columns,
    mask: npt.NDArray[np.bool_] | None,
    period: IntArray,
    labels: list[str],
    bucket: IntArray,
    n_buckets: int,
    log_bucket: IntArray,
    has_cost: bool,
) -> pd.DataFrame:
    """The grouped table (``overview.GROUP_COLUMNS``) of the selected rows (all for None)."""
    n_log = len(LATENCY_EDGES) + 2
    # (provider, model) as a compact pair index: the grouping key then spans few values, so
    # ``bincount`` over the dense key space is cheaper than sorting the keys (``np.unique``).
    n_model = len(cols.values["model"])
    pair_code = _take(cols.derived["pair"], mask)
    pair_seen = np.zeros(len(cols.values["provider"]) * n_model, dtype=np.bool_)
    pair_seen[pair_code] = True
    pair_ids = np.flatnonzero(pair_seen)
    pair_index = np.zeros(len(pair_seen), dtype=np.int64)
    pair_index[pair_ids] = np.arange(len(pair_ids))
    n_pairs = len(pair_ids)
    key = ((period * n_buckets + bucket) * n_log + log_bucket) * n_pairs + pair_index[pair_code]
    space = (int(period.max()) + 1) * n_buckets * n_log * n_pairs
    if space <= _DENSE_KEYS:
        counts = np.bincount(key, minlength=space)
        used = np.flatnonzero(counts)
        inverse = key
    else:
        used, inverse = np.unique(key, return_inverse=True)
    size = len(used)
    latency, cost = _take(cols.latency, mask), _take(cols.cost, mask)
    has_lat, has_c = ~np.isnan(latency), ~np.isnan(cost)

    def total(weights: npt.NDArray[Any] | None) -> npt.NDArray[Any]:
        summed = np.bincount(inverse, weights=weights, minlength=space if inverse is key else size)
        return summed[used] if inverse is key else summed

    n_lat = total(has_lat)
    sum_lat = np.where(n_lat > 0, total(np.where(has_lat, latency, 0.0)), np.nan)
    n_cost = total(has_c)
    summed_cost = np.where(n_cost > 0, total(np.where(has_c, cost, 0.0)), np.nan)
    pair_of = pair_ids[used % n_pairs]
    rest = used // n_pairs
    log_of = rest % n_log
    rest //= n_log
    bucket_of = rest % n_buckets
    period_of = rest // n_buckets
    provider_of, model_of = pair_of // n_model, pair_of % n_model
    no_latency = n_buckets - 1 if n_buckets > 1 else 0
    groups = pd.DataFrame(
        {
            "provider": np.asarray(cols.values["provider"], dtype=object)[provider_of],
            "model": np.asarray(cols.values["model"], dtype=object)[model_of],
            "period": np.asarray(labels, dtype=object)[period_of],
            "bucket": np.where(
                (bucket_of == no_latency) & (n_lat == 0), np.nan, bucket_of.astype(np.float64)
            ),
            "log_bucket": np.where(log_of == n_log - 1, np.nan, log_of.astype(np.float64)),
            "rows": total(None).astype(np.int64),
            "ok": total(_take(cols.success, mask)).astype(np.int64),
            "n_lat": n_lat.astype(np.int64),
            "sum_lat": sum_lat,
            "cost": summed_cost if has_cost else np.full(size, np.nan),
        }
    )
    return groups[GROUP_COLUMNS]
