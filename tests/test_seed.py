"""Demo data: deterministic, realistic, fast to write, and safe to seed on top of existing data."""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select

from nano_export import schema
from nano_export.cli import main
from nano_export.db import as_utc, get_engine, upgrade
from nano_export.errors import BadInput
from nano_export.pricing import PRICES, compute_costs
from nano_export.seed import seed_database
from nano_export.seed_text import TOOLS, sensitive_snippets

ANCHOR = datetime(2025, 8, 10, tzinfo=UTC)
NANO_AGENT_TESTS = {
    "dummy_test",
    "basic_read_test",
    "file_operations_test",
    "code_analysis_test",
    "complex_engineering_test",
}
CREDENTIAL = re.compile(
    r"sk-[A-Za-z0-9-]{20,}|AKIA[A-Z0-9]{16}|ghp_[A-Za-z0-9]{36}|eyJ[\w-]+\.[\w-]+\.[\w-]+"
    r"|password=\S+|postgres://[^:\s]+:[^@\s]+@"
)
EXE, MET, STEP, RUN = (
    schema.executions,
    schema.execution_metrics,
    schema.interactions,
    schema.eval_runs,
)


def _fresh_sqlite(tmp_path: Path, name: str) -> Engine:
    engine = get_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine)
    return engine


def _norm(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def _content(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every seeded row keyed by source keys instead of ids, so databases can be compared."""
    with engine.connect() as conn:
        keys = dict(conn.execute(select(EXE.c.id, EXE.c.source_key)).all())
        run_keys = dict(conn.execute(select(RUN.c.id, RUN.c.source_key)).all())
        execs = [
            (r.source_key, run_keys.get(r.eval_run_id), *map(_norm, r[3:]))
            for r in conn.execute(select(EXE).order_by(EXE.c.source_key))
        ]
        metrics = sorted((keys[r[0]], *r[1:]) for r in conn.execute(select(MET)))
        steps = sorted(
            (keys[r.execution_id], *map(_norm, r[2:])) for r in conn.execute(select(STEP))
        )
        runs = [
            tuple(map(_norm, r[1:-1])) for r in conn.execute(select(RUN).order_by(RUN.c.source_key))
        ]
    return {"executions": execs, "metrics": metrics, "interactions": steps, "runs": runs}


def _executions(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(EXE, MET).outerjoin(MET, MET.c.execution_id == EXE.c.id)).all()
        )


def test_same_seed_and_anchor_give_identical_rows_on_any_backend(
    db_url: str, tmp_path: Path
) -> None:
    engine = get_engine(db_url)
    seed_database(engine, rows=400, seed=3, anchor=ANCHOR)
    same = _fresh_sqlite(tmp_path, "same.db")
    seed_database(same, rows=400, seed=3, anchor=ANCHOR)
    other = _fresh_sqlite(tmp_path, "other.db")
    seed_database(other, rows=400, seed=4, anchor=ANCHOR)

    here = _content(engine)
    assert len(here["executions"]) == 400
    assert here == _content(same)
    theirs = _content(other)
    assert [r[2:] for r in here["executions"]] != [r[2:] for r in theirs["executions"]]


def test_seeding_again_adds_nothing_and_growing_adds_the_rows_one_seeding_would_have(
    db_url: str, tmp_path: Path
) -> None:
    engine = get_engine(db_url)
    first = seed_database(engine, rows=245, seed=5, anchor=ANCHOR)  # ends inside an eval run
    again = seed_database(engine, rows=245, seed=5, anchor=ANCHOR)
    grown = seed_database(engine, rows=600, seed=5, anchor=ANCHOR)
    assert (first.rows_written, first.rows_skipped) == (245, 0)
    assert (again.rows_written, again.rows_skipped, again.interactions) == (0, 245, 0)
    assert (grown.rows_written, grown.rows_skipped) == (355, 245)

    at_once = _fresh_sqlite(tmp_path, "at-once.db")
    seed_database(at_once, rows=600, seed=5, anchor=ANCHOR)
    assert _content(engine) == _content(at_once)  # the split eval run was reused, not duplicated


def test_every_model_provider_and_nano_agent_test_appears(engine: Engine) -> None:
    seed_database(engine, rows=1000, seed=0, anchor=ANCHOR)
    with engine.connect() as conn:
        pairs = set(conn.execute(select(EXE.c.provider, EXE.c.model).distinct()).all())
        tests = set(conn.execute(select(EXE.c.test_id).distinct()).scalars())
        names = dict(conn.execute(select(EXE.c.test_id, EXE.c.test_name).distinct()).all())
    assert pairs == {(p.provider, p.model) for p in PRICES}
    assert tests >= NANO_AGENT_TESTS | {None}  # None: ad-hoc runs
    assert len(tests) > len(NANO_AGENT_TESTS) + 1  # plus tests of our own
    assert names["dummy_test"] == "The Dummy Test"
    assert names["basic_read_test"] == "Basic Read Test"


def test_runs_start_within_the_90_days_before_the_anchor_spread_over_many_days(
    engine: Engine,
) -> None:
    seed_database(engine, rows=1000, seed=1, anchor=ANCHOR)
    starts = [as_utc(r.started_at) for r in _executions(engine)]
    assert all(ANCHOR - timedelta(days=90) <= s < ANCHOR for s in starts if s)
    assert len({s.date() for s in starts if s}) > 45
    with engine.connect() as conn:
        run_starts = conn.execute(select(RUN.c.started_at)).scalars().all()
    assert all(ANCHOR - timedelta(days=90) <= as_utc(s) < ANCHOR for s in run_starts)  # type: ignore[operator]


def test_a_small_share_of_rows_carries_planted_secrets_emails_home_paths_and_formulas(
    engine: Engine,
) -> None:
    seed_database(engine, rows=1000, seed=2, anchor=ANCHOR)
    rows = _executions(engine)
    texts = [f"{r.prompt} {r.response or ''}" for r in rows]
    with_secret = sum(bool(CREDENTIAL.search(t)) for t in texts)
    assert 0.003 * len(rows) <= with_secret <= 0.03 * len(rows)
    assert any(re.search(r"[\w.]+@(example\.com|acme-labs\.io)", t) for t in texts)
    assert any(re.search(r"/home/\w+/|/Users/\w+/", t) for t in texts)
    assert any(r.response and r.response[0] in "=+-@" for r in rows)
    with engine.connect() as conn:
        results = conn.execute(select(STEP.c.result).where(STEP.c.kind == "tool_call")).scalars()
        assert any(CREDENTIAL.search(r or "") for r in results)


def test_planted_snippets_cover_every_kind_of_credential() -> None:
    text = " ".join(t for _, t in sensitive_snippets())
    for pattern in (
        r"sk-[A-Za-z0-9]{48}",
        r"sk-ant-api03-",
        r"sk-proj-",
        r"AKIA[A-Z0-9]{16}",
        r"ghp_[A-Za-z0-9]{36}",
        r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+",
        r"password=\S+",
        r"postgres://\w+:\w+@",
    ):
        assert re.search(pattern, text), pattern


def test_costs_follow_the_pricing_table_and_models_have_their_real_shape(engine: Engine) -> None:
    seed_database(engine, rows=1200, seed=0, anchor=ANCHOR)
    by_model: dict[str, list[Any]] = defaultdict(list)
    for r in _executions(engine):
        by_model[r.model].append(r)
        if r.input_tokens is None:
            assert not r.success and r.cost_usd is None and r.execution_time_s is None
            continue
        costs = compute_costs(
            r.model,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cached_tokens=r.cached_tokens,
            reasoning_tokens=r.reasoning_tokens,
        )
        assert costs is not None
        assert (r.input_cost_usd, r.output_cost_usd, r.cost_usd) == (
            costs.input_cost_usd,
            costs.output_cost_usd,
            costs.cost_usd,
        )
        assert r.cached_savings_usd == costs.cached_savings_usd
        assert r.total_tokens == r.input_tokens + r.output_tokens
        assert r.cached_tokens <= r.input_tokens and r.reasoning_tokens <= r.output_tokens

    def mean(model: str, field: str) -> float:
        values = [getattr(r, field) for r in by_model[model] if getattr(r, field) is not None]
        return statistics.fmean(values)

    opus, haiku = "claude-opus-4-1-20250805", "claude-3-haiku-20240307"
    assert mean(opus, "cost_usd") > 10 * mean(haiku, "cost_usd")
    assert mean(opus, "execution_time_s") > 2 * mean(haiku, "execution_time_s")
    assert mean("gpt-oss:20b", "cost_usd") == 0 and mean("gpt-oss:120b", "cost_usd") == 0
    slowest = max(by_model, key=lambda m: mean(m, "execution_time_s"))
    assert slowest == "gpt-oss:120b"
    assert mean("gpt-5", "reasoning_tokens") > 0.5 * mean("gpt-5", "output_tokens")
    assert mean(haiku, "reasoning_tokens") == 0
    assert any(r.cached_tokens for r in by_model["gpt-5-mini"] if r.cached_tokens is not None)


def test_success_rates_differ_by_model_and_failures_carry_an_error(engine: Engine) -> None:
    seed_database(engine, rows=1200, seed=0, anchor=ANCHOR)
    rows = _executions(engine)
    for r in rows:
        assert (r.error is None) == r.success
        assert (r.response is None) == (not r.success)

    def rate(model: str) -> float:
        return statistics.fmean(r.success for r in rows if r.model == model)

    assert rate("claude-opus-4-1-20250805") > rate("gpt-oss:20b") + 0.05
    assert 0.7 < rate("gpt-oss:20b") < 0.95
    assert any(not r.success and r.input_tokens is None for r in rows)
    assert any(not r.success and r.input_tokens is not None for r in rows)
    assert sum(r.user is not None for r in rows) > 0.85 * len(rows)
    assert sum(r.session_id is not None for r in rows) > 0.85 * len(rows)
    assert 100 <= statistics.fmean(len(r.prompt) for r in rows) <= 600


def test_eval_runs_hold_one_execution_per_model_with_grades_and_ranks(engine: Engine) -> None:
    seed_database(engine, rows=600, seed=0, anchor=ANCHOR)
    runs: dict[int, list[Any]] = defaultdict(list)
    adhoc = []
    for r in _executions(engine):
        (runs[r.eval_run_id] if r.eval_run_id else adhoc).append(r)
    assert len(runs) == 50 and len(adhoc) == 100
    for members in runs.values():
        assert sorted(r.model for r in members) == sorted(p.model for p in PRICES)
        assert len({r.test_id for r in members}) == 1
        assert min(r.rank for r in members) == 1
        assert all(r.overall_grade in set("SABCDEF") for r in members)
        assert all(r.perf_grade == "F" for r in members if not r.success)
        # speed grades follow execution time within a run
        timed = sorted((r for r in members if r.execution_time_s), key=lambda r: r.execution_time_s)
        assert timed[0].speed_grade == "S"
    assert all(r.rank is None and r.overall_grade is None and r.test_id is None for r in adhoc)


def test_interactions_go_request_tools_response_in_order_after_the_execution_started(
    engine: Engine,
) -> None:
    seed_database(engine, rows=300, seed=0, anchor=ANCHOR)
    starts = {r.id: as_utc(r.started_at) for r in _executions(engine)}
    with engine.connect() as conn:
        steps = conn.execute(select(STEP).order_by(STEP.c.execution_id, STEP.c.seq)).all()
    per: dict[int, list[Any]] = defaultdict(list)
    for s in steps:
        per[s.execution_id].append(s)
    assert set(per) == set(starts)
    assert any(len(v) >= 5 for v in per.values())
    assert any(s.is_error for s in steps if s.kind == "tool_call")
    for eid, items in per.items():
        assert [s.seq for s in items] == list(range(len(items)))
        assert items[0].kind == "request" and items[-1].kind == "response"
        times = [as_utc(s.started_at) for s in items]
        assert starts[eid] < times[0] and times == sorted(times)  # type: ignore[operator]
        for s in items[1:-1]:
            assert s.kind == "tool_call" and s.tool_name in TOOLS
            assert isinstance(json.loads(s.arguments), dict)
            assert s.duration_s is not None and s.duration_s > 0


def test_ids_continue_after_existing_rows_and_later_inserts_do_not_collide(engine: Engine) -> None:
    one = seed_database(engine, rows=200, seed=1, anchor=ANCHOR)
    with engine.connect() as conn:
        before = (
            conn.execute(select(func.max(EXE.c.id))).scalar_one(),
            conn.execute(select(func.max(STEP.c.id))).scalar_one(),
        )
    two = seed_database(engine, rows=200, seed=2, anchor=ANCHOR)
    assert one.rows_written == two.rows_written == 200
    with engine.begin() as conn:
        second = conn.execute(
            select(func.min(EXE.c.id), func.max(EXE.c.id)).where(EXE.c.source_key.like("seed:2:%"))
        ).one()
        assert tuple(second) == (before[0] + 1, before[0] + 200)
        first_step = conn.execute(
            select(func.min(STEP.c.id)).join(EXE, EXE.c.id == STEP.c.execution_id)
            .where(EXE.c.source_key.like("seed:2:%"))
        ).scalar_one()  # fmt: skip
        assert first_step == before[1] + 1
        # An importer inserting without ids afterwards gets fresh ones (PostgreSQL sequences moved).
        run_id = conn.execute(
            insert(RUN).values(
                source_key="import:x", test_id="t", test_name="T", source="x", imported_at=ANCHOR
            )
        ).inserted_primary_key[0]
        exec_id = conn.execute(
            insert(EXE).values(
                source_key="import:y", eval_run_id=run_id, provider="openai", model="gpt-5",
                started_at=ANCHOR, success=True, source="x",
            )
        ).inserted_primary_key[0]  # fmt: skip
        conn.execute(
            insert(STEP).values(execution_id=exec_id, seq=0, kind="request", started_at=ANCHOR)
        )
        assert exec_id == second[1] + 1


def test_seed_database_rejects_bad_arguments_and_a_database_without_schema(
    tmp_path: Path,
) -> None:
    engine = _fresh_sqlite(tmp_path, "ok.db")
    with pytest.raises(BadInput, match="rows"):
        seed_database(engine, rows=0)
    with pytest.raises(BadInput, match="seed"):
        seed_database(engine, rows=10, seed=-1)
    empty = get_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(BadInput, match="nano-export init"):
        seed_database(empty, rows=10)


def test_progress_is_reported_up_to_the_rows_asked_for(sqlite_url: str) -> None:
    seen: list[int] = []
    seed_database(get_engine(sqlite_url), rows=150, progress=seen.append)
    assert sum(seen) == 150


def test_cli_seed_writes_rows_and_prints_what_it_did(db_url: str) -> None:
    result = CliRunner().invoke(main, ["--db", db_url, "seed", "--rows", "200", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "Seeded 200 executions" in result.output and "seed 7" in result.output
    with get_engine(db_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(EXE)).scalar_one() == 200


def test_cli_seed_refuses_zero_rows_with_exit_code_2(sqlite_url: str) -> None:
    result = CliRunner().invoke(main, ["--db", sqlite_url, "seed", "--rows", "0"])
    assert result.exit_code == 2
    assert "--rows" in result.output


def test_cli_seed_help_explains_rows_seed_and_reruns() -> None:
    result = CliRunner().invoke(main, ["seed", "--help"])
    assert result.exit_code == 0
    assert "--rows N" in result.output and "--seed S" in result.output
    assert "already seeded" in result.output


def test_seeding_leaves_planner_statistics_on_postgresql(db_url: str) -> None:
    # A million freshly loaded rows without statistics made PostgreSQL sort the whole join on disk
    # instead of walking the primary keys: seeding ends with ANALYZE there. SQLite plans the
    # export well without statistics and is left without them.
    engine = get_engine(db_url)
    seed_database(engine, rows=257, seed=3, anchor=ANCHOR)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert not conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).all()
        else:
            tuples = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'executions'"
            ).scalar_one()
            assert tuples == 257
