"""Explore's in-memory columns: the non-text columns of every execution, never stale.

Explore's figures over a million executions take seconds in SQL, and every new filter is a new
scan. So each process keeps the columns Explore filters and aggregates on — id, provider, model,
test id and name (dictionary-coded), started_at, success, execution time and cost — as numpy
arrays (about 45 bytes a row), and answers the overview, the sample rows' ids, the row count and
the filter choices from them with vectorised masks and ``bincount``.

Freshness: triggers replace the random tokens of the ``data_versions`` row in every transaction
that writes the executions or their metrics (migration 0009). Each use reads that row first (one
primary-key lookup) and compares it with the tokens the columns were loaded under:

- the same tokens: the columns are current;
- only ``appended`` differs: the rows after the highest id held are read and appended, then the
  row counts of both tables are checked against the database (a row committed out of id order,
  or a metrics row added to an older execution, fails the check and forces a full load);
- anything else (an update, a delete, a truncate, another database): a full load.

The tokens are read before the rows, so the columns are never older than the tokens they carry;
and they live in the database, so an import through any process or replica is seen by all. A
``where`` (free text or not) is not evaluated here: the caller falls back to SQL.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from nano_export import filters
from nano_export.datasets import Dataset, get_dataset
from nano_export.db import read_connection
from nano_export.errors import QueryTimeout
from nano_export.models import FilterSpec
from nano_export.overview import GROUP_COLUMNS, LATENCY_EDGES, Overview, empty, from_groups
from nano_export.schema import data_versions
from nano_export.schema import execution_metrics as m
from nano_export.schema import executions as e
from nano_export.settings import get_settings

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("provider", "model", "test_id", "test_name")
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOAD_SQL = (
    "SELECT e.id, e.provider, e.model, e.test_id, e.test_name, e.started_at, e.success, "
    "e.execution_time_s, m.execution_id AS metrics_id, m.cost_usd "
    "FROM executions e LEFT JOIN execution_metrics m ON m.execution_id = e.id "
    "WHERE e.id > {after}"
)
#: The dataset fields the columns stand for: a dataset is covered when each is this column.
_FIELDS = {
    "provider": e.c.provider,
    "model": e.c.model,
    "test_id": e.c.test_id,
    "test_name": e.c.test_name,
    "started_at": e.c.started_at,
    "success": e.c.success,
}
IntArray = npt.NDArray[np.int64]
#: Group keys up to this many values are counted with a dense ``bincount``; more are sorted.
_DENSE_KEYS = 4_000_000


@dataclass(frozen=True)
class Key:
    """The ``data_versions`` tokens the columns were read under."""

    appended: str
    changed: str


@dataclass(frozen=True)
class Columns:
    """The columns of every execution, ascending by id; text columns as codes into ``values``."""

    key: Key
    ids: IntArray
    codes: dict[str, npt.NDArray[np.int32]]  # -1 for NULL
    values: dict[str, tuple[str, ...]]
    started_us: IntArray  # microseconds since 1970-01-01 UTC
    success: npt.NDArray[np.bool_]
    latency: npt.NDArray[np.float64]  # NaN for NULL
    cost: npt.NDArray[np.float64]  # NaN for NULL or no metrics row
    metrics_rows: int
    _pairs: list[tuple[str, str]] = field(default_factory=list, compare=False, repr=False)

    @property
    def rows(self) -> int:
        """How many executions the columns hold."""
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes the arrays take."""
        arrays = [self.ids, self.started_us, self.success, self.latency, self.cost]
        return sum(a.nbytes for a in [*arrays, *self.codes.values()])


_cache: dict[str, Columns] = {}
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_warming: set[str] = set()


def _supported(engine: Engine) -> bool:
    if engine.dialect.name == "postgresql":
        return engine.dialect.driver == "psycopg"
    db = engine.url.database or ""
    return engine.dialect.name == "sqlite" and db not in ("", ":memory:") and "file:" not in db


def _cache_key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _lock(url: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault(url, threading.Lock())


def forget() -> None:
    """Drop every process's columns (tests and the bench: the next use loads from scratch)."""
    with _guard:
        _cache.clear()


def columns_for(engine: Engine) -> Columns | None:
    """The current columns of ``engine``'s executions; None where they are not kept.

    Not kept: an in-memory SQLite database, a driver other than psycopg, or a database whose
    ``data_versions`` row is missing (emptied by a TRUNCATE, until the next write).
    """
    if not _supported(engine):
        return None
    url = _cache_key(engine)
    with _lock(url):
        key = _read_key(engine)
        have = _cache.get(url)
        if key is None:
            _cache.pop(url, None)
            return None
        if have is not None and have.key == key:
            return have
        began = time.perf_counter()
        appendable = have is not None and have.key.changed == key.changed
        cols = _append(engine, have, key) if have is not None and appendable else None
        how = "appended" if cols is not None else "loaded"
        if cols is None:
            cols = _build(key, [_read(engine, after=-1)])
        _cache[url] = cols
        log.info(
            "explore columns %s",
            how,
            extra={
                "rows": cols.rows,
                "megabytes": round(cols.nbytes / 1e6, 1),
                "seconds": round(time.perf_counter() - began, 3),
            },
        )
        return cols


def warm(engine: Engine) -> None:
    """Load the columns in a background thread, once per database and process."""
    if not _supported(engine):
        return
    url = _cache_key(engine)
    with _guard:
        if url in _warming:
            return
        _warming.add(url)

    def run() -> None:
        try:
            columns_for(engine)
        except Exception:  # the first page view reports it (or falls back to SQL)
            log.exception("explore columns not loaded in the background")

    threading.Thread(target=run, name="explore-columns", daemon=True).start()


def data_version(engine: Engine) -> str | None:
    """The current data version of the executions (changes with every write), or None."""
    key = _read_key(engine)
    return None if key is None else f"{key.appended}:{key.changed}"


def _read_key(engine: Engine) -> Key | None:
    dv = data_versions
    stmt = select(dv.c.appended, dv.c.changed).where(dv.c.name == "executions")
    try:  # a primary-key read of a one-row table: no time limit needed (nor its round trip)
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    except DBAPIError:  # a database without migration 0009: SQL only
        log.warning("no data_versions table: explore reads in SQL")
        return None
    return None if row is None else Key(str(row[0]), str(row[1]))


def _read(engine: Engine, *, after: int) -> pa.Table:
    """The executions with an id above ``after``, as an Arrow table."""
    sql = _LOAD_SQL.format(after=int(after))
    if engine.dialect.name == "sqlite":
        import connectorx as cx

        path = Path(str(engine.url.database)).resolve()
        table: pa.Table = cx.read_sql(f"sqlite://{path}", sql, return_type="arrow")
        return table
    return _read_postgres(engine, sql)


def _read_postgres(engine: Engine, sql: str) -> pa.Table:
    import adbc_driver_postgresql.dbapi as adbc

    from nano_export.pgcopy import libpq_uri

    seconds = get_settings().query_timeout_s
    with adbc.connect(libpq_uri(engine.url)) as conn, conn.cursor() as cur:
        # The interactive time limit of ``read_connection``, for this connection's transaction.
        cur.execute(f"SET LOCAL statement_timeout = {int(seconds) * 1000}")
        try:
            cur.execute(sql)
            table: pa.Table = cur.fetch_arrow_table()
        except adbc.Error as exc:
            if getattr(exc, "sqlstate", None) == "57014":
                raise QueryTimeout(seconds) from None
            raise
        return table


def _floats(column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    filled = pc.fill_null(column.cast(pa.float64()), float("nan"))
    return np.asarray(filled.to_numpy(), dtype=np.float64)


def _micros(column: pa.ChunkedArray) -> IntArray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz=column.type.tz))
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _build(key: Key, parts: list[pa.Table], base: Columns | None = None) -> Columns:
    """Columns from Arrow tables (after ``base``'s rows, when given), ascending by id."""
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    ids = np.asarray(table["id"].cast(pa.int64()).to_numpy(), dtype=np.int64)
    codes: dict[str, npt.NDArray[np.int32]] = {}
    values: dict[str, tuple[str, ...]] = {}
    for name in TEXT_COLUMNS:
        known = list(base.values[name]) if base is not None else []
        index = {v: i for i, v in enumerate(known)}
        encoded = pc.dictionary_encode(table[name].cast(pa.string())).combine_chunks()
        mapping = np.empty(len(encoded.dictionary) + 1, dtype=np.int32)
        for i, value in enumerate(encoded.dictionary.to_pylist()):
            mapping[i] = index.setdefault(value, len(index))
        mapping[-1] = -1  # NULL
        raw = pc.fill_null(encoded.indices, -1).to_numpy()
        codes[name] = mapping[np.asarray(raw, dtype=np.int64)]
        values[name] = tuple(index)
    new: dict[str, Any] = {
        "ids": ids,
        "started_us": _micros(table["started_at"]),
        "success": np.asarray(table["success"].to_numpy(zero_copy_only=False), dtype=np.bool_),
        "latency": _floats(table["execution_time_s"]),
        "cost": _floats(table["cost_usd"]),
    }
    metrics_rows = len(table) - table["metrics_id"].null_count
    if base is not None:
        new = {k: np.concatenate([getattr(base, k), v]) for k, v in new.items()}
        codes = {k: np.concatenate([base.codes[k], v]) for k, v in codes.items()}
        metrics_rows += base.metrics_rows
    order = None if np.all(new["ids"][1:] > new["ids"][:-1]) else np.argsort(new["ids"])
    if order is not None:
        new = {k: v[order] for k, v in new.items()}
        codes = {k: v[order] for k, v in codes.items()}
    return Columns(key=key, codes=codes, values=values, metrics_rows=metrics_rows, **new)


def _append(engine: Engine, have: Columns, key: Key) -> Columns | None:
    """``have`` plus the rows added since, or None when the row counts show more changed."""
    after = int(have.ids[-1]) if have.rows else -1
    cols = _build(key, [_read(engine, after=after)], base=have)
    count = select(
        select(func.count()).select_from(e).scalar_subquery(),
        select(func.count()).select_from(m).scalar_subquery(),
    )
    with read_connection(engine) as conn:
        n_exec, n_metrics = conn.execute(count).one()
    if (int(n_exec), int(n_metrics)) != (cols.rows, cols.metrics_rows):
        log.info("explore columns: rows changed besides appends, loading all")
        return None
    return cols


# ---- selections --------------------------------------------------------------------------------


def _covers(ds: Dataset) -> bool:
    """Whether the dataset's filter fields and Explore's columns are the columns kept here."""
    names = {c.name: c.expr for c in ds.columns}
    fields_ok = all(ds.filter_fields.get(k) is col for k, col in _FIELDS.items())
    latency = names.get("execution_time_s")
    cost = names.get("cost_usd")
    return (
        fields_ok
        and latency is e.c.execution_time_s
        and names.get("provider") is e.c.provider
        and names.get("model") is e.c.model
        and names.get("success") is e.c.success
        and (cost is None or cost is m.c.cost_usd)
    )


def _micros_of(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _isin(cols: Columns, name: str, wanted: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    codes = [i for i, v in enumerate(cols.values[name]) if v in set(wanted)]
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
    cols, mask, has_cost = found
    if not mask.any():
        return empty(True, has_cost)
    started = cols.started_us[mask]
    first, last = int(started.min()), int(started.max())
    if grain is None:
        span = (last - first) // _DAY_US
        grain = "day" if span <= 120 else "week" if span <= 730 else "month"
    latency = cols.latency[mask]
    known = ~np.isnan(latency)
    lo = width = 0.0
    n_buckets = 1  # only "no latency" without any latency
    bucket = np.zeros(len(latency), dtype=np.int64)
    log_bucket = np.full(len(latency), len(LATENCY_EDGES) + 1, dtype=np.int64)
    median = None
    if known.any():
        values = latency[known]
        lo, hi = float(values.min()), float(values.max())
        width = (hi - lo) / bins if hi > lo else 1.0
        with np.errstate(invalid="ignore"):
            raw = np.floor((latency - lo) / width)
        bucket = np.where(known, np.minimum(np.nan_to_num(raw), bins - 1), bins).astype(np.int64)
        edges = np.asarray(LATENCY_EDGES, dtype=np.float64)
        log_bucket = np.where(known, np.searchsorted(edges, latency, side="right"), len(edges) + 1)
        n_buckets = bins + 1
        median = float(np.median(values))
    groups = _groups(cols, mask, started, bucket, n_buckets, log_bucket, grain, has_cost)
    return from_groups(
        groups, lo=lo, width=width, median=median, has_success=True, has_cost=has_cost
    )


def _periods(started: IntArray, grain: str) -> tuple[IntArray, list[str]]:
    """Each row's period as a compact index, and each index's first day ('YYYY-MM-DD', UTC)."""
    days = started // _DAY_US
    first = int(days.min())
    every_day = np.arange(first, int(days.max()) + 1, dtype=np.int64)
    if grain == "week":  # 1970-01-01 was a Thursday: the Monday is 3 days before
        starts = every_day - (every_day + 3) % 7
    elif grain == "month":
        months = every_day.astype("datetime64[D]").astype("datetime64[M]")
        starts = months.astype("datetime64[D]").astype(np.int64)
    else:
        starts = every_day
    unique, index = np.unique(starts, return_inverse=True)
    labels = [str(d) for d in unique.astype("datetime64[D]")]
    return index[days - first].astype(np.int64), labels


def _groups(
    cols: Columns,
    mask: npt.NDArray[np.bool_],
    started: IntArray,
    bucket: IntArray,
    n_buckets: int,
    log_bucket: IntArray,
    grain: str,
    has_cost: bool,
) -> pd.DataFrame:
    """The grouped table (``overview.GROUP_COLUMNS``) of the selected rows."""
    period, labels = _periods(started, grain)
    n_log = len(LATENCY_EDGES) + 2
    # (provider, model) as a compact pair index: the grouping key then spans few values, so
    # ``bincount`` over the dense key space is cheaper than sorting the keys (``np.unique``).
    n_model = len(cols.values["model"])
    pair_code = cols.codes["provider"][mask].astype(np.int64) * n_model + cols.codes["model"][mask]
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
    latency, cost = cols.latency[mask], cols.cost[mask]
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
            "ok": total(cols.success[mask]).astype(np.int64),
            "n_lat": n_lat.astype(np.int64),
            "sum_lat": sum_lat,
            "cost": summed_cost if has_cost else np.full(size, np.nan),
        }
    )
    return groups[GROUP_COLUMNS]
