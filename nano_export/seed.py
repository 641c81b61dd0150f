"""Realistic, deterministic demo data: eval runs, executions, metrics and tool interactions.

``seed_database(engine, rows=N, seed=S)`` makes the database hold the first ``N`` executions of the
stream ``S``. Each execution has the key ``seed:{S}:{index:010d}``; indexes already present are
skipped, so seeding again with the same seed adds nothing, and seeding ``N`` then ``M > N`` adds the
rows ``N..M-1`` — the same rows one seeding of ``M`` would have written. Rows depend on the seed,
the anchor (default: today 00:00 UTC) and their index only.

Writing is bulk: primary keys are assigned here (after the current maximum), rows go in batches of
``seed_gen.ROWS_PER_BATCH`` executions, one transaction per batch — PostgreSQL through ``COPY``
with the tables locked against concurrent inserts and the id sequences advanced afterwards, SQLite
through ``executemany``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from nano_export import schema
from nano_export import seed_gen as gen
from nano_export import seed_text as txt
from nano_export.db import has_schema, is_sqlite, utcnow
from nano_export.errors import BadInput
from nano_export.pricing import PRICES, PRICING_VERSION, compute_costs

log = logging.getLogger(__name__)

SOURCE = "seed"
HOP = "hop_evaluate_nano_agents"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

EXECUTION_COLUMNS = (
    "id", "source_key", "eval_run_id", "test_id", "test_name", "provider", "model", "started_at",
    "success", "error", "execution_time_s", "prompt", "response", "user", "session_id", "source",
    "perf_grade", "speed_grade", "cost_grade", "overall_grade", "rank",
)  # fmt: skip
METRIC_COLUMNS = (
    "execution_id", "input_tokens", "output_tokens", "total_tokens", "cached_tokens",
    "reasoning_tokens", "input_cost_usd", "output_cost_usd", "cached_savings_usd", "cost_usd",
    "pricing_version",
)  # fmt: skip
INTERACTION_COLUMNS = (
    "id", "execution_id", "seq", "kind", "tool_name", "arguments", "result", "is_error",
    "duration_s", "started_at",
)  # fmt: skip
EVAL_RUN_COLUMNS = (
    "id", "source_key", "test_id", "test_name", "hop", "lop", "source", "started_at", "imported_at",
)  # fmt: skip

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What one seeding wrote."""

    seed: int
    anchor: datetime
    rows_requested: int
    rows_written: int
    rows_skipped: int
    eval_runs: int
    interactions: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Executions written per second of wall time."""
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def execution_key(seed: int, index: int) -> str:
    """The ``source_key`` of execution ``index`` of stream ``seed``."""
    return f"seed:{seed}:{index:010d}"


def run_key(seed: int, unit: int) -> str:
    """The ``source_key`` of eval run ``unit`` of stream ``seed``."""
    return f"seed:{seed}:run:{unit:09d}"


def default_anchor() -> datetime:
    """Today 00:00 UTC: demo data then ends just before today."""
    return utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


def seed_database(
    engine: Engine,
    *,
    rows: int,
    seed: int = 0,
    anchor: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Make the database hold the first ``rows`` executions of the demo stream ``seed``.

    ``progress`` is called after each batch with the number of executions it covered (written or
    already present). Raises ``BadInput`` for ``rows < 1``, a negative seed, or a database without
    the schema.
    """
    if rows < 1:
        raise BadInput(f"rows must be at least 1, got {rows}")
    if seed < 0:
        raise BadInput(f"seed must be 0 or more, got {seed}")
    if not has_schema(engine):
        raise BadInput("the database has no schema yet: run `nano-export init` first")
    at = default_anchor() if anchor is None else _utc(anchor)
    anchor_us = (at - _EPOCH) // timedelta(microseconds=1)
    writer: _Writer = _SqliteWriter() if is_sqlite(engine) else _PostgresWriter()
    began = time.perf_counter()
    written = skipped = runs = steps = 0
    # One connection throughout (SQLite keeps its page cache warm), one transaction per batch.
    with engine.connect() as conn:
        writer.connected(conn)
        for batch_no in range(math.ceil(rows / gen.ROWS_PER_BATCH)):
            lo = batch_no * gen.ROWS_PER_BATCH
            hi = min(rows, lo + gen.ROWS_PER_BATCH)
            batch = gen.generate(seed, batch_no, anchor_us)
            with conn.begin():
                writer.prepare(conn)
                counts = _write_batch(conn, writer, batch, seed=seed, lo=lo, hi=hi)
                writer.finish(conn)
            written += counts[0]
            skipped += hi - lo - counts[0]
            runs += counts[1]
            steps += counts[2]
            log.debug("seed batch written", extra={"batch": batch_no, "rows": counts[0]})
            if progress is not None:
                progress(hi - lo)
        if written:
            _analyze(conn)
    report = SeedReport(
        seed=seed,
        anchor=at,
        rows_requested=rows,
        rows_written=written,
        rows_skipped=skipped,
        eval_runs=runs,
        interactions=steps,
        seconds=time.perf_counter() - began,
    )
    log.info(
        "seeded demo data",
        extra={"seed": seed, "rows": written, "skipped": skipped, "seconds": report.seconds},
    )
    return report


#: The tables seeding fills, whose planner statistics it refreshes.
_SEEDED_TABLES = ("eval_runs", "executions", "execution_metrics", "interactions")


def _analyze(conn: Connection) -> None:
    """Refresh PostgreSQL's planner statistics after a bulk load.

    Without them PostgreSQL planned a 1M-row export as a parallel scan plus an on-disk sort of the
    whole join (1.6 s of server time and 460 MB of temporary files) instead of walking both
    primary keys. SQLite is left alone: without statistics it walks the rowid, while sampled
    statistics (``analysis_limit``) misjudged the index sizes and made it read the table through
    a secondary index, 20% slower.
    """
    if conn.dialect.name == "sqlite":
        return
    with conn.begin():
        conn.exec_driver_sql(f"ANALYZE {', '.join(_SEEDED_TABLES)}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _max_id(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())


def _existing(conn: Connection, seed: int, lo: int, hi: int) -> set[int]:
    keys = schema.executions.c.source_key
    found = conn.execute(
        select(keys).where(keys >= execution_key(seed, lo), keys <= execution_key(seed, hi - 1))
    ).scalars()
    return {int(k.rsplit(":", 1)[1]) for k in found}


def _existing_runs(conn: Connection, seed: int, units: Sequence[int]) -> dict[int, int]:
    if not units:
        return {}
    t = schema.eval_runs
    found = conn.execute(
        select(t.c.source_key, t.c.id).where(
            t.c.source_key >= run_key(seed, min(units)), t.c.source_key <= run_key(seed, max(units))
        )
    )
    return {int(k.rsplit(":", 1)[1]): int(i) for k, i in found}


def _write_batch(
    conn: Connection, writer: _Writer, batch: gen.Batch, *, seed: int, lo: int, hi: int
) -> tuple[int, int, int]:
    """Insert the rows ``lo..hi-1`` of ``batch`` that are missing; (executions, runs, steps)."""
    index = np.arange(batch.size, dtype=np.int64) + batch.first_index
    want = (index >= lo) & (index < hi)
    present = _existing(conn, seed, lo, hi)
    if present:
        want &= ~np.isin(index, np.fromiter(present, dtype=np.int64))
    sel = np.flatnonzero(want)
    if sel.size == 0:
        return 0, 0, 0

    # Eval runs: one per unit with a selected eval execution; reuse runs already stored.
    slot = index[sel] % gen.UNIT
    unit = index[sel] // gen.UNIT
    eval_units = sorted(set(unit[slot < gen.N_MODELS].tolist()))
    run_ids = _existing_runs(conn, seed, eval_units)
    new_units = [u for u in eval_units if u not in run_ids]
    next_run = _max_id(conn, schema.eval_runs) + 1
    run_ids.update({u: next_run + k for k, u in enumerate(new_units)})
    run_rows = _run_rows(batch, seed, new_units, run_ids)

    first_id = _max_id(conn, schema.executions) + 1
    ids = np.arange(first_id, first_id + sel.size, dtype=np.int64)
    exec_rows, metric_rows, texts = _execution_rows(batch, sel, ids, seed, unit, slot, run_ids)
    steps = gen.interactions(batch, sel, seed)
    first_step = _max_id(conn, schema.interactions) + 1
    step_rows = _interaction_rows(batch, sel, ids, steps, first_step, texts)

    writer.write(conn, "eval_runs", EVAL_RUN_COLUMNS, run_rows)
    writer.write(conn, "executions", EXECUTION_COLUMNS, exec_rows)
    writer.write(conn, "execution_metrics", METRIC_COLUMNS, metric_rows)
    writer.write(conn, "interactions", INTERACTION_COLUMNS, step_rows)
    return len(exec_rows), len(run_rows), len(step_rows)


def _run_rows(batch: gen.Batch, seed: int, units: list[int], ids: dict[int, int]) -> list[Row]:
    if not units:
        return []
    positions = np.array(units, dtype=np.int64) * gen.UNIT - batch.first_index
    eval_starts = batch.start_us.reshape(-1, gen.UNIT)[:, : gen.N_MODELS].min(axis=1)
    starts = gen.timestamps(eval_starts[positions // gen.UNIT])  # when the first model started
    imported = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = []
    for u, pos, started in zip(units, positions.tolist(), starts, strict=True):
        k = int(batch.kind[pos])
        test = txt.KINDS[k]
        lop = f"lop_eval_{k + 1}__{test.test_id}"
        rows.append((ids[u], run_key(seed, u), test.test_id, test.test_name, HOP, lop, SOURCE,
                     started, imported))  # fmt: skip
    return rows


def _pick(pool: np.ndarray, idx: np.ndarray) -> list[Any]:
    return pool[idx].tolist()  # type: ignore[no-any-return]


def _obj(values: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


# Flat pools indexed by (kind, model, variant) and friends, built once.
_PROMPTS = _obj(
    [
        p.replace("{model}", price.model)
        for k in range(len(txt.KINDS))
        for price in PRICES
        for p in txt.prompt_pool(k)
    ]
)
_RESPONSES = _obj(
    [r for k in range(len(txt.KINDS)) for m in range(len(PRICES)) for r in txt.response_pool(k, m)]
)
_PROVIDER_NAMES = sorted({p.provider for p in PRICES})
_ERRORS = _obj([e for prov in _PROVIDER_NAMES for e in txt.ERRORS.get(prov, txt.ERRORS["openai"])])
_ERRORS_PER = len(txt.ERRORS["openai"])
_MODEL_PROVIDER = np.array([_PROVIDER_NAMES.index(p.provider) for p in PRICES])
_MODELS = _obj([p.model for p in PRICES])
_PROVIDERS = _obj([p.provider for p in PRICES])
_TEST_IDS = _obj([k.test_id for k in txt.KINDS])
_TEST_NAMES = _obj([k.test_name for k in txt.KINDS])
_USERS = _obj([*txt.USERS, None])  # index -1 → None
_GRADES = _obj([*"SABCDEF", None])
_TOOLS = _obj([*txt.TOOLS, None])
_ARGS = _obj([a for t in range(len(txt.TOOLS)) for a in txt.tool_arguments(t)])
_RESULTS = _obj([r for t in range(len(txt.TOOLS)) for r in txt.tool_results(t)])
_TOOL_ERRORS = _obj(txt.TOOL_ERRORS)
_REQUEST_ARGS = _obj([txt.request_arguments(m) for m in range(len(PRICES))])
_KIND_NAMES = _obj(["request", "tool_call", "response"])
_NULL = np.array(None, dtype=object)


@dataclass(frozen=True, slots=True)
class _Texts:
    """Per selected execution: what the interactions repeat or plant."""

    error: list[str | None]
    snippet: list[str | None]


def _execution_rows(
    batch: gen.Batch,
    sel: np.ndarray,
    ids: np.ndarray,
    seed: int,
    unit: np.ndarray,
    slot: np.ndarray,
    run_ids: dict[int, int],
) -> tuple[list[Row], list[Row], _Texts]:
    m, k = batch.model[sel], batch.kind[sel]
    success = batch.success[sel]
    pool = txt.POOL_SIZE
    prompts = _pick(_PROMPTS, (k * len(PRICES) + m) * pool + batch.prompt_variant[sel])
    responses = _pick(_RESPONSES, (k * len(PRICES) + m) * pool + batch.response_variant[sel])
    errors = _pick(_ERRORS, _MODEL_PROVIDER[m] * _ERRORS_PER + batch.error_variant[sel])
    snippets: list[str | None] = [None] * sel.size
    snippet_pool = txt.sensitive_snippets()
    ok_list = success.tolist()
    for pos in np.flatnonzero(batch.sensitive[sel] >= 0).tolist():
        category, text = snippet_pool[int(batch.sensitive[sel[pos]])]
        snippets[pos] = text
        if category == "formula":  # a cell that starts with it, as a spreadsheet would run it
            responses[pos] = f"{text} {responses[pos]}"
        elif sel[pos] % 3 == 0 and ok_list[pos]:
            responses[pos] = f"{responses[pos]} {text}"
        else:
            prompts[pos] = f"{prompts[pos]} {text}"
    for pos, ok in enumerate(ok_list):
        if ok:
            errors[pos] = None
        else:
            responses[pos] = None

    is_eval = slot < gen.N_MODELS
    run_of_unit = np.array([run_ids.get(u, 0) for u in unit.tolist()], dtype=np.int64)
    eval_run = np.where(is_eval, run_of_unit, 0)
    has_metrics = batch.has_metrics[sel]
    times = np.where(has_metrics, batch.time_s[sel], np.nan)
    sessions = batch.session[sel]
    session_ids = [f"sess-{s:016x}" if s >= 0 else None for s in sessions.tolist()]
    keys = [execution_key(seed, i) for i in (sel + batch.first_index).tolist()]
    exec_rows = list(
        zip(
            ids.tolist(),
            keys,
            [r or None for r in eval_run.tolist()],
            _pick(_TEST_IDS, k),
            _pick(_TEST_NAMES, k),
            _pick(_PROVIDERS, m),
            _pick(_MODELS, m),
            gen.timestamps(batch.start_us[sel]),
            ok_list,
            errors,
            [None if math.isnan(t) else t for t in times.tolist()],
            prompts,
            responses,
            _pick(_USERS, batch.user[sel]),
            session_ids,
            [SOURCE] * sel.size,
            _pick(_GRADES, batch.perf[sel]),
            _pick(_GRADES, batch.speed[sel]),
            _pick(_GRADES, batch.cost[sel]),
            _pick(_GRADES, batch.overall[sel]),
            [r or None for r in batch.rank[sel].tolist()],
            strict=True,
        )
    )
    metric_rows = _metric_rows(batch, sel, ids, m, has_metrics)
    return exec_rows, metric_rows, _Texts(error=errors, snippet=snippets)


def _metric_rows(
    batch: gen.Batch, sel: np.ndarray, ids: np.ndarray, m: np.ndarray, has_metrics: np.ndarray
) -> list[Row]:
    rows: list[Row] = []
    columns = zip(
        ids.tolist(),
        m.tolist(),
        has_metrics.tolist(),
        batch.input_tokens[sel].tolist(),
        batch.output_tokens[sel].tolist(),
        batch.cached_tokens[sel].tolist(),
        batch.reasoning_tokens[sel].tolist(),
        strict=True,
    )
    empty = (None,) * (len(METRIC_COLUMNS) - 1)
    for eid, model, ok, inp, out, cached, reasoning in columns:
        if not ok:
            rows.append((eid, *empty))
            continue
        costs = compute_costs(
            PRICES[model].model,
            input_tokens=inp,
            output_tokens=out,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
        )
        assert costs is not None  # every seeded model is in the pricing table
        rows.append((eid, inp, out, inp + out, cached, reasoning, costs.input_cost_usd,
                     costs.output_cost_usd, costs.cached_savings_usd, costs.cost_usd,
                     PRICING_VERSION))  # fmt: skip
    return rows


def _interaction_rows(
    batch: gen.Batch,
    sel: np.ndarray,
    ids: np.ndarray,
    steps: gen.Interactions,
    first_id: int,
    texts: _Texts,
) -> list[Row]:
    n = steps.seq.size
    model = batch.model[sel][steps.row]
    is_tool = steps.kind == 1
    args = np.where(
        steps.kind == 0,
        _REQUEST_ARGS[model],
        np.where(is_tool, _ARGS[steps.tool * txt.POOL_SIZE + steps.variant], _NULL),
    )
    ok_result = _RESULTS[steps.tool * txt.POOL_SIZE + steps.variant]
    err_result = _TOOL_ERRORS[steps.variant % len(_TOOL_ERRORS)]
    results: list[Any] = np.where(
        is_tool, np.where(steps.is_error, err_result, ok_result), _NULL
    ).tolist()
    rows_list = steps.row.tolist()
    for j in np.flatnonzero(steps.kind == 2).tolist():
        results[j] = texts.error[rows_list[j]] or '{"success": true}'
    # A planted snippet also shows up in the first tool result, as a file's content would.
    for j in np.flatnonzero(is_tool & (steps.seq == 1)).tolist():
        snippet = texts.snippet[rows_list[j]]
        if snippet is not None and not steps.is_error[j]:
            results[j] = f"{results[j]}\n{snippet}"
    durations = [None if math.isnan(d) else d for d in steps.duration_s.tolist()]
    return list(
        zip(
            range(first_id, first_id + n),
            ids[steps.row].tolist(),
            steps.seq.tolist(),
            _KIND_NAMES[steps.kind].tolist(),
            _TOOLS[np.where(is_tool, steps.tool, -1)].tolist(),
            args.tolist(),
            results,
            steps.is_error.tolist(),
            durations,
            gen.timestamps(steps.start_us),
            strict=True,
        )
    )


class _Writer:
    """Bulk insert of plain tuples into one table."""

    def connected(self, conn: Connection) -> None:
        """Called once on the connection used for every batch, outside any transaction."""

    def prepare(self, conn: Connection) -> None:
        """Called at the start of each batch transaction."""

    def write(self, conn: Connection, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        """Insert ``rows`` (tuples in the order of ``columns``)."""
        raise NotImplementedError

    def finish(self, conn: Connection) -> None:
        """Called at the end of each batch transaction."""


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


class _SqliteWriter(_Writer):
    def connected(self, conn: Connection) -> None:
        # A bigger page cache (128 MB, released when the connection closes) keeps the indexes in
        # memory while they grow; the default 2 MB makes large seedings I/O bound.
        conn.exec_driver_sql("PRAGMA cache_size = -131072")
        conn.commit()

    def write(self, conn: Connection, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        if rows:
            marks = ", ".join("?" * len(columns))
            sql = f'INSERT INTO "{table}" ({_column_list(columns)}) VALUES ({marks})'
            conn.exec_driver_sql(sql, rows)  # type: ignore[arg-type]


_ID_TABLES = ("eval_runs", "executions", "interactions")


class _PostgresWriter(_Writer):
    def __init__(self) -> None:
        self._skip_fk_checks: bool | None = None

    def prepare(self, conn: Connection) -> None:
        # Timestamps are written as UTC text; the lock keeps concurrent importers from taking an
        # id between our max(id) and our COPY (they wait for this batch, then continue after it).
        conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.exec_driver_sql(
            f"LOCK TABLE {', '.join(_ID_TABLES)}, execution_metrics IN SHARE ROW EXCLUSIVE MODE"
        )
        # Foreign-key triggers more than double the cost of COPY. Every row written here refers to
        # an id of this same transaction (or an eval run just looked up under the lock), so, like
        # pg_restore --disable-triggers, skip them when the role may; otherwise keep them.
        if self._skip_fk_checks is None:
            setting = conn.exec_driver_sql("SELECT current_setting('is_superuser')").scalar()
            self._skip_fk_checks = setting == "on"
        if self._skip_fk_checks:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")

    def write(self, conn: Connection, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        if not rows:
            return
        raw = conn.connection.driver_connection
        assert raw is not None
        sql = f'COPY "{table}" ({_column_list(columns)}) FROM STDIN'
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self, conn: Connection) -> None:
        # Ids were assigned here, not by the sequences: move them past the new rows.
        for table in _ID_TABLES:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} "
                "HAVING max(id) IS NOT NULL"
            )
