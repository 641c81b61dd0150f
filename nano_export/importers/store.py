"""Writing parsed records to the database: idempotent, inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from nano_export import schema
from nano_export.db import utcnow
from nano_export.importers.records import ExecutionRecord, ParsedFile, RunRecord


@dataclass(frozen=True, slots=True)
class StoreResult:
    """How many executions were added and how many were stored already."""

    added: int
    present: int


def _run_id(conn: Connection, run: RunRecord) -> int:
    t = schema.eval_runs
    existing = conn.execute(select(t.c.id).where(t.c.source_key == run.source_key)).scalar()
    if existing is not None:
        return int(existing)
    inserted = conn.execute(
        insert(t)
        .values(
            source_key=run.source_key,
            test_id=run.test_id,
            test_name=run.test_name,
            hop=run.hop,
            lop=run.lop,
            source=run.source,
            started_at=run.started_at,
            imported_at=utcnow(),
        )
        .returning(t.c.id)
    ).scalar_one()
    return int(inserted)


def _existing_keys(conn: Connection, keys: list[str]) -> set[str]:
    t = schema.executions
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        found.update(
            conn.execute(select(t.c.source_key).where(t.c.source_key.in_(batch))).scalars()
        )
    return found


def _execution_row(record: ExecutionRecord, run_id: int | None) -> dict[str, object]:
    return {
        "source_key": record.source_key,
        "eval_run_id": run_id,
        "test_id": record.test_id,
        "test_name": record.test_name,
        "provider": record.provider[:64],
        "model": record.model[:128],
        "started_at": record.started_at,
        "success": record.success,
        "error": record.error,
        "execution_time_s": record.execution_time_s,
        "prompt": record.prompt,
        "response": record.response,
        "user": record.user,
        "session_id": record.session_id,
        "cwd": record.cwd,
        "source": record.source,
        "perf_grade": record.perf_grade,
        "speed_grade": record.speed_grade,
        "cost_grade": record.cost_grade,
        "overall_grade": record.overall_grade,
        "rank": record.rank,
    }


def store(conn: Connection, parsed: ParsedFile) -> StoreResult:
    """Insert the run, executions, metrics and interactions not stored yet (by ``source_key``)."""
    unique: dict[str, ExecutionRecord] = {}
    for record in parsed.executions:
        unique.setdefault(record.source_key, record)
    present = _existing_keys(conn, list(unique))
    new = [r for k, r in unique.items() if k not in present]
    duplicates = len(parsed.executions) - len(unique)
    if not new:
        return StoreResult(added=0, present=len(present) + duplicates)
    run_id = _run_id(conn, parsed.run) if parsed.run is not None else None
    t = schema.executions
    conn.execute(insert(t), [_execution_row(r, run_id) for r in new])
    ids: dict[str, int] = {}
    keys = [r.source_key for r in new]
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        rows = conn.execute(select(t.c.source_key, t.c.id).where(t.c.source_key.in_(batch)))
        ids.update({key: int(id_) for key, id_ in rows})
    metrics: list[dict[str, object]] = []
    interactions: list[dict[str, object]] = []
    for record in new:
        execution_id = ids[record.source_key]
        m = record.metrics
        metrics.append(
            {
                "execution_id": execution_id,
                "input_tokens": m.input_tokens,
                "output_tokens": m.output_tokens,
                "total_tokens": m.total_tokens,
                "cached_tokens": m.cached_tokens,
                "reasoning_tokens": m.reasoning_tokens,
                "input_cost_usd": m.input_cost_usd,
                "output_cost_usd": m.output_cost_usd,
                "cached_savings_usd": m.cached_savings_usd,
                "cost_usd": m.cost_usd,
                "pricing_version": m.pricing_version,
            }
        )
        interactions.extend(
            {
                "execution_id": execution_id,
                "seq": i.seq,
                "kind": i.kind,
                "tool_name": i.tool_name[:128] if i.tool_name else None,
                "arguments": i.arguments,
                "result": i.result,
                "is_error": i.is_error,
                "duration_s": i.duration_s,
                "started_at": i.started_at,
            }
            for i in record.interactions
        )
    conn.execute(insert(schema.execution_metrics), metrics)
    if interactions:
        conn.execute(insert(schema.interactions), interactions)
    return StoreResult(added=len(new), present=len(present) + duplicates)
