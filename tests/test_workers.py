"""Exports on a procrastinate worker pool (PostgreSQL): real worker processes, a fresh database."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_server import start_server
from conftest import PG_URL
from factories import insert_executions, write_users
from smtp_server import smtp_server
from sqlalchemy import select, text
from workers import (
    ROOT,
    STALL_S,
    environment,
    fresh_database,
    seed_rows,
    start_worker,
    wait_until,
    worker_settings,
)

from nano_export import audit, jobs
from nano_export.cadence import make_timing
from nano_export.db import get_engine, utcnow
from nano_export.errors import ExportLimitReached
from nano_export.jobs import queue
from nano_export.jobs.records import worker_name
from nano_export.models import AuditEvent, ExportRecord, ExportRequest, FilterSpec
from nano_export.schedules import create_schedule
from nano_export.schema import exports
from nano_export.settings import Settings

pytestmark = pytest.mark.postgres

#: Rows of the export whose worker is killed (the issue asks for 300K; lower it to iterate).
KILL_ROWS = int(os.environ.get("NANO_EXPORT_TEST_KILL_ROWS", "300000"))


@pytest.fixture
def db_url(pg_server_url: str) -> Iterator[str]:
    """A database of this test's own, so no other process's worker takes its jobs."""
    with fresh_database(PG_URL) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return worker_settings(db_url, tmp_path / "data", chunk_rows=2000)


def submit(settings: Settings, user: str = "ann", **request: object) -> ExportRecord:
    return jobs.submit_export(
        get_engine(settings.db_url),
        settings,
        user=user,
        role="analyst",
        request=ExportRequest(dataset="performance-metrics", **request),  # type: ignore[arg-type]
        interface="api",
    )


def row(settings: Settings, export_id: str) -> dict[str, object]:
    with get_engine(settings.db_url).connect() as conn:
        found = conn.execute(select(exports).where(exports.c.id == export_id)).one()
    return dict(found._mapping)


def events(settings: Settings, export_id: str) -> list[AuditEvent]:
    with get_engine(settings.db_url).connect() as conn:
        return [e for e in audit.list_events(conn) if e.export_id == export_id]


def csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def test_init_applies_the_queue_schema_and_a_second_init_changes_nothing(
    settings: Settings,
) -> None:
    env = environment(settings)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "nano_export", "init"], env=env, cwd=ROOT, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()
    with get_engine(settings.db_url).connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'procrastinate_%'")
            ).scalars()
        )
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"} <= tables
    from alembic.script import ScriptDirectory

    from nano_export.db import alembic_config

    head = ScriptDirectory.from_config(
        alembic_config(get_engine(settings.db_url))
    ).get_current_head()
    assert version == head  # every migration ran, the queue's (0006_workers) among them


def test_a_submitted_export_is_a_job_that_a_worker_process_runs(
    settings: Settings, tmp_path: Path
) -> None:
    insert_executions(get_engine(settings.db_url), 5000)
    rec = submit(settings)
    assert rec.status == "queued"  # no worker yet: it waits on the queue
    assert row(settings, rec.id)["runner"] == "queue"
    worker = start_worker(settings, tmp_path)
    try:
        done = jobs.wait_for(get_engine(settings.db_url), rec.id, timeout=60)
        assert done.status == "succeeded", worker.log()[-2000:]
        assert done.rows_done == 5000
        assert row(settings, rec.id)["worker"] == worker.name  # not this process
        assert csv_rows(Path(done.file_path or "")) == 5000
        names = [e.event for e in events(settings, rec.id)]
        assert names == ["export.requested", "export.started", "export.succeeded"]
        # A worker is a service: it logs its exports without -v.
        assert any(rec.id in line and "export" in line for line in worker.log().splitlines())
    finally:
        assert worker.stop() == 0


def test_submit_to_first_progress_is_quick_with_a_worker_waiting(
    settings: Settings, tmp_path: Path
) -> None:
    insert_executions(get_engine(settings.db_url), 10_000)
    worker = start_worker(settings, tmp_path)
    engine = get_engine(settings.db_url)
    try:
        started = time.monotonic()
        rec = submit(settings)
        wait_until(
            lambda: row(settings, rec.id)["rows_done"],
            timeout=30,
            what="first progress",
            every=0.01,
        )
        first_progress = time.monotonic() - started
        assert jobs.wait_for(engine, rec.id, timeout=60).status == "succeeded"
        print(f"submit → first progress on a 10K-row export: {first_progress:.2f} s")
        assert first_progress < 5  # the aim is under 1 s; a loaded CI machine gets slack
    finally:
        worker.stop()


@pytest.mark.slow
def test_a_worker_killed_mid_export_is_retried_from_the_start_on_another_worker(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", chunk_rows=5000)
    engine = get_engine(db_url)
    seed_rows(engine, KILL_ROWS)
    first = start_worker(settings, tmp_path, "--concurrency", "1")
    rec = submit(settings)
    wait_until(
        lambda: row(settings, rec.id)["rows_done"],
        timeout=120,
        what=lambda: f"progress:\n{first.log()[-2000:]}",
    )
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    killed_at = time.monotonic()
    mid = row(settings, rec.id)
    assert mid["status"] == "running" and 0 < int(str(mid["rows_done"])) < KILL_ROWS

    second = start_worker(settings, tmp_path, "--concurrency", "1")
    try:
        done = jobs.wait_for(engine, rec.id, timeout=300)
        took = time.monotonic() - killed_at
        assert done.status == "succeeded", second.log()[-3000:]
        print(f"{KILL_ROWS} rows: succeeded {took:.1f} s after the kill (stall {STALL_S} s)")
        final = row(settings, rec.id)
        assert final["attempt"] == 2
        assert final["worker"] == second.name
        assert done.rows_done == done.rows_total == KILL_ROWS
        # Exactly one file at the final path, nothing temporary left beside it, the right rows.
        path = Path(done.file_path or "")
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
        assert csv_rows(path) == KILL_ROWS
        assert hashlib.sha256(path.read_bytes()).hexdigest() == done.sha256
        trail = events(settings, rec.id)
        names = [e.event for e in trail]
        assert names == [
            "export.requested",
            "export.started",
            "export.retried",
            "export.started",
            "export.succeeded",
        ]
        retried = trail[2]
        assert retried.reason is not None and "stopped sending heartbeats" in retried.reason
        assert retried.details["worker"] == first.name
        assert trail[3].details == {"attempt": 2}
    finally:
        second.stop()


def test_sigterm_lets_the_running_export_finish_before_the_worker_exits(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", chunk_rows=1000)
    engine = get_engine(db_url)
    insert_executions(engine, 40_000)
    worker = start_worker(settings, tmp_path)
    rec = submit(settings)
    wait_until(lambda: row(settings, rec.id)["rows_done"], timeout=60, what="progress")
    assert row(settings, rec.id)["status"] == "running"
    assert worker.stop(timeout=120) == 0
    # By the time the worker has exited, its export has finished: nothing to retry or fail.
    after = row(settings, rec.id)
    assert after["status"] == "succeeded"
    assert after["rows_done"] == 40_000
    assert after["attempt"] == 1


def test_queued_exports_count_against_the_limit_and_cancel_ends_one_at_once(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", max_concurrent_exports=2)
    engine = get_engine(db_url)
    insert_executions(engine, 100)
    first, second = submit(settings), submit(settings)
    with pytest.raises(ExportLimitReached):
        submit(settings)
    cancelled = jobs.cancel_export(engine, export_id=first.id, user="ann", role="analyst")
    assert cancelled.status == "cancelled"  # it never reached a worker: it ends now
    third = submit(settings)  # its slot is free again
    # Waiting long for a worker is not death: the heartbeat reaper leaves queued jobs alone.
    later = utcnow() + timedelta(hours=1)
    assert jobs.reap_stale(engine, settings, now=later) == 0
    waiting = [
        jobs.get_export(engine, export_id=r.id, user="ann", role="analyst") for r in (second, third)
    ]
    assert {r.status for r in waiting} == {"queued"}
    worker = start_worker(settings, tmp_path)
    try:
        for rec in (second, third):
            assert jobs.wait_for(engine, rec.id, timeout=60).status == "succeeded"
        assert jobs.get_export(engine, export_id=first.id, user="ann", role="analyst").status == (
            "cancelled"
        )
    finally:
        worker.stop()


def test_cancelling_an_export_running_on_a_worker_stops_it_and_removes_its_file(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", chunk_rows=500)
    engine = get_engine(db_url)
    insert_executions(engine, 40_000)
    worker = start_worker(settings, tmp_path)
    try:
        rec = submit(settings)
        wait_until(lambda: row(settings, rec.id)["rows_done"], timeout=60, what="progress")
        jobs.cancel_export(engine, export_id=rec.id, user="ann", role="analyst")
        done = jobs.wait_for(engine, rec.id, timeout=60)
        assert done.status == "cancelled"
        assert list(settings.export_dir.iterdir()) == []
    finally:
        worker.stop()


def test_a_job_whose_export_is_gone_or_no_longer_valid_ends_without_a_file(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data")
    engine = get_engine(db_url)
    insert_executions(engine, 100)
    queue.run_queued(engine, settings, "no-such-export")  # a job left from a deleted row
    rec = submit(settings)
    with engine.begin() as conn:  # the frozen spec names a column the dataset no longer has
        conn.execute(
            exports.update().where(exports.c.id == rec.id).values(spec='{"columns": ["gone"]}')
        )
    queue.run_queued(engine, settings, rec.id)
    failed = jobs.get_export(engine, export_id=rec.id, user="ann", role="analyst")
    assert failed.status == "failed" and "gone" in (failed.error or "")
    assert [e.event for e in events(settings, rec.id)][-1] == "export.failed"
    queue.run_queued(engine, settings, rec.id)  # run again: it already ended, nothing happens
    assert not settings.export_dir.exists() or list(settings.export_dir.iterdir()) == []


def test_an_export_the_queue_cannot_take_fails_with_the_reason_and_frees_its_slot(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", max_concurrent_exports=1)
    engine = get_engine(db_url)
    insert_executions(engine, 100)
    with engine.begin() as conn:  # the queue's table is missing (a half-applied schema)
        conn.execute(text("ALTER TABLE procrastinate_jobs RENAME TO procrastinate_jobs_away"))
    rec = submit(settings)
    assert rec.status == "failed"
    assert (rec.error or "").startswith("could not queue the export")
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE procrastinate_jobs_away RENAME TO procrastinate_jobs"))
    assert submit(settings).status == "queued"  # the slot was freed


def test_the_embedded_worker_runs_exports_in_this_process_and_can_be_turned_off(
    db_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(db_url, tmp_path / "data", embedded_worker=True)
    insert_executions(get_engine(db_url), 500)
    rec = submit(settings)  # starts this process's embedded worker on first use
    done = jobs.wait_for(get_engine(db_url), rec.id, timeout=60)
    assert done.status == "succeeded"
    assert row(settings, rec.id)["worker"] == worker_name()
    assert not queue.start_embedded(settings)  # once per process
    off = settings.model_copy(update={"embedded_worker": False, "database_url": db_url + "?x=1"})
    assert not queue.start_embedded(off)
    sqlite = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert not queue.start_embedded(sqlite)


def test_two_workers_and_one_due_schedule_send_exactly_one_email(
    settings: Settings, tmp_path: Path
) -> None:
    engine = get_engine(settings.db_url)
    insert_executions(engine, 300)
    write_users(settings, {"ann": "analyst"})
    create_schedule(
        engine,
        settings,
        name="daily-openai",
        owner="ann",
        request=ExportRequest(
            dataset="evaluation-results", filters=FilterSpec(provider=("openai",))
        ),
        timing=make_timing("daily", at="06:00", tz="Europe/Berlin"),
        recipients=["team@example.org"],
        interface="cli",
        now=utcnow() - timedelta(days=3),
    )
    with smtp_server() as inbox:
        smtp = {
            "NANO_EXPORT_SMTP_HOST": "127.0.0.1",
            "NANO_EXPORT_SMTP_PORT": str(inbox.port),
        }
        workers = [start_worker(settings, tmp_path, **smtp) for _ in range(2)]
        try:
            wait_until(lambda: inbox.messages, timeout=90, what="the scheduled email")
            time.sleep(12)  # another schedule tick passes on both workers
            assert len(inbox.messages) == 1
            with engine.connect() as conn:
                runs = audit.list_events(conn, event="schedule.run")
            assert len(runs) == 1
        finally:
            for worker in workers:
                worker.stop()


@pytest.mark.slow
def test_an_export_runs_on_the_worker_and_outlives_the_web_process_that_accepted_it(
    db_url: str, tmp_path: Path
) -> None:
    server = start_server(tmp_path, db_url, {"NANO_EXPORT_EMBEDDED_WORKER": "false"})
    engine = get_engine(db_url)
    insert_executions(engine, 40_000)
    worker_env = worker_settings(
        db_url, server.settings.data_dir, secret_key=server.settings.secret_key, chunk_rows=1000
    )
    worker = start_worker(worker_env, tmp_path)
    try:
        with server.client("ann") as client:
            response = client.post("/api/exports", json={"dataset": "performance-metrics"})
        assert response.status_code == 202, response.text
        export_id = response.json()["id"]
        wait_until(lambda: row(worker_env, export_id)["rows_done"], timeout=60, what="progress")
        os.kill(server.proc.pid, signal.SIGKILL)  # the web process dies mid-export
        server.proc.wait(timeout=10)
        done = jobs.wait_for(engine, export_id, timeout=120)
        assert done.status == "succeeded"
        assert done.rows_done == 40_000
        assert row(worker_env, export_id)["worker"] == worker.name
        assert row(worker_env, export_id)["attempt"] == 1  # never interrupted
    finally:
        server.stop()
        worker.stop()


def test_the_scheduler_command_starts_a_worker_on_postgres(
    settings: Settings, tmp_path: Path
) -> None:
    scheduler = start_worker(settings, tmp_path, command="scheduler")
    assert "schedules run on workers" in scheduler.log()
    assert scheduler.stop() == 0


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_worker_stopped_while_it_starts_exits_cleanly(
    settings: Settings, tmp_path: Path, command: str
) -> None:
    """SIGTERM before the queue has put its own handlers in place (a worker stopped right after
    it was started) stops the worker cleanly instead of killing it."""
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nano_export", command],
            cwd=ROOT,
            env=environment(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: proc.poll() is not None or "worker" in log_path.read_text(errors="replace"),
            timeout=60,
            what="the worker's first line",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_worker_command_refuses_sqlite_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANO_EXPORT_")}
    env["NANO_EXPORT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "nano_export", "worker"], env=env, cwd=ROOT, capture_output=True
    )
    assert done.returncode == 2
    assert b"workers run on PostgreSQL" in done.stderr
