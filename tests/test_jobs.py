"""Export lifecycle on both databases: runs, limits, cancel, failures, dead workers, retention."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from factories import SECRET, hold_slots, insert_executions, insert_export, take_slot
from sqlalchemy import Engine, func, select, update

from nano_export import audit, jobs
from nano_export.db import get_engine, utcnow
from nano_export.errors import (
    BadInput,
    ExportLimitReached,
    InvalidFilter,
    NotFound,
    NotReady,
    PermissionDenied,
)
from nano_export.exporter import plan_export
from nano_export.jobs import running
from nano_export.models import ExportRequest, FilterSpec, Role
from nano_export.schema import export_slots, exports
from nano_export.settings import Settings
from nano_export.storage import Storage


def _events(settings: Settings, **kw: str) -> list[str]:
    with get_engine(settings.db_url).connect() as conn:
        return [e.event for e in audit.list_events(conn, **kw)]


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    insert_executions(get_engine(settings.db_url), 120)
    return settings


def _download(
    engine: Engine, export_dir: Path, export_id: str, *, user: str = "ann", role: Role = "analyst"
) -> Path:
    """``jobs.open_download`` as the API calls it; the path of the file it would serve."""
    stored, _ = jobs.open_download(
        engine,
        export_id=export_id,
        user=user,
        role=role,
        interface="api",
        storage=Storage(export_dir),
    )
    assert stored.local_path is not None
    return stored.local_path


def test_a_finished_export_has_its_file_checksum_and_audit_trail(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    request = ExportRequest(dataset="evaluation-results", filters=FilterSpec(provider=("openai",)))
    rec = jobs.submit_export(
        engine, loaded, user="ann", role="analyst", request=request, interface="cli", wait=True
    )
    assert rec.status == "succeeded"
    assert rec.rows_done == rec.rows_total == 40
    path = Path(rec.file_path or "")
    assert path.parent == loaded.export_dir
    rows = _rows(path)
    assert len(rows) == 40
    assert {r["provider"] for r in rows} == {"openai"}
    assert rec.bytes == path.stat().st_size
    import hashlib

    assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert SECRET not in path.read_text()
    assert _events(loaded, export_id=rec.id) == [
        "export.requested",
        "export.started",
        "export.succeeded",
    ]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(export_slots)).scalar_one() == 0


def test_a_background_export_is_followed_through_its_row(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="admin",
        request=ExportRequest(dataset="agent-interactions", privacy="full"),
        interface="api",
    )
    assert rec.status in ("queued", "running", "succeeded")
    final = jobs.wait_for(engine, rec.id, timeout=60)
    assert final.status == "succeeded"
    assert final.rows_done == 240


def test_a_privacy_level_above_the_role_is_refused_and_audited(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    with pytest.raises(PermissionDenied, match="viewer"):
        jobs.submit_export(
            engine,
            loaded,
            user="vic",
            role="viewer",
            request=ExportRequest(dataset="evaluation-results", privacy="standard"),
            interface="api",
        )
    assert _events(loaded, actor="vic") == ["export.denied"]
    assert jobs.list_exports(engine, user="vic") == []


def test_bad_requests_are_refused_before_anything_is_stored(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    bad = [
        ExportRequest(dataset="nope"),
        ExportRequest(dataset="evaluation-results", columns=["model", "nope"]),
        ExportRequest(dataset="evaluation-results", columns=["model", "model"]),
        ExportRequest(dataset="evaluation-results", rename={"nope": "x"}),
        ExportRequest(dataset="evaluation-results", rename={"model": "provider"}),
        ExportRequest(dataset="evaluation-results", privacy="public", columns=["prompt"]),
        ExportRequest(dataset="evaluation-results", filters=FilterSpec(where="cost >")),
    ]
    for request in bad:
        with pytest.raises((BadInput, InvalidFilter)):
            jobs.submit_export(
                engine, loaded, user="ann", role="admin", request=request, interface="cli"
            )
    assert jobs.list_exports(engine) == []
    assert _events(loaded) == []


def test_the_concurrency_limit_refuses_one_more_and_audits_it(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    hold_slots(engine, "ann", loaded.max_concurrent_exports)  # running in other processes
    request = ExportRequest(dataset="performance-metrics")
    with pytest.raises(ExportLimitReached, match="3 export"):
        jobs.submit_export(
            engine, loaded, user="ann", role="admin", request=request, interface="api"
        )
    assert _events(loaded, actor="ann") == ["export.denied"]
    # another user is not affected
    rec = jobs.submit_export(
        engine, loaded, user="bob", role="analyst", request=request, interface="api", wait=True
    )
    assert rec.status == "succeeded"


def test_cancelling_stops_the_job_and_removes_its_temporary_file(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    settings = loaded.model_copy(update={"chunk_rows": 100})
    insert_executions(engine, 2_000, first_id=1_000)
    holder: dict[str, str] = {}
    cancelled = threading.Event()

    def on_progress(rows: int, total: int | None) -> None:
        if rows > 0 and not cancelled.is_set():
            with engine.connect() as conn:
                holder["id"] = conn.execute(select(exports.c.id)).scalar_one()
            jobs.cancel_export(engine, export_id=holder["id"], user="ann", role="analyst")
            cancelled.set()

    rec = jobs.submit_export(
        engine,
        settings,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="evaluation-results"),
        interface="dashboard",
        wait=True,
        on_progress=on_progress,
    )
    assert rec.status == "cancelled"
    assert rec.rows_done < 2_120
    assert not Path(rec.file_path or "").exists()
    assert list(settings.export_dir.iterdir()) == []
    assert "export.cancelled" in _events(loaded, export_id=rec.id)
    with pytest.raises(BadInput, match="cancelled"):
        jobs.cancel_export(engine, export_id=rec.id, user="ann", role="analyst")


def test_a_failing_export_leaves_no_file_and_records_the_reason(
    loaded: Settings, tmp_path: Path
) -> None:
    engine = get_engine(loaded.db_url)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="evaluation-results"),
        interface="cli",
        wait=True,
        out_path=blocker / "out.csv",
    )
    assert rec.status == "failed"
    assert rec.error
    assert not (blocker / "out.csv").exists()
    events = _events(loaded, export_id=rec.id)
    assert events[-1] == "export.failed"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(export_slots)).scalar_one() == 0


def test_an_export_past_its_wall_clock_limit_fails_with_the_reason(
    loaded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10**9, 10))  # each look at the clock: ten seconds later
    monkeypatch.setattr(jobs.running.time, "monotonic", lambda: float(next(clock)))
    limited = loaded.model_copy(update={"export_time_limit_s": 5})
    rec = jobs.submit_export(
        get_engine(loaded.db_url),
        limited,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="evaluation-results"),
        interface="cli",
        wait=True,
    )
    assert rec.status == "failed"
    assert rec.error is not None and "longer than its limit of 5 s" in rec.error
    assert list(loaded.export_dir.glob("*")) == []
    assert _events(loaded, export_id=rec.id)[-1] == "export.failed"


def test_other_users_exports_are_not_found_but_admins_see_them(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="api",
        wait=True,
    )
    with pytest.raises(NotFound):
        jobs.get_export(engine, export_id=rec.id, user="bob", role="analyst")
    with pytest.raises(NotFound):
        _download(engine, loaded.export_dir, rec.id, user="bob", role="viewer")
    with pytest.raises(NotFound):
        jobs.get_export(engine, export_id="does-not-exist", user="ann", role="admin")
    assert jobs.get_export(engine, export_id=rec.id, user="root", role="admin").id == rec.id
    path = _download(engine, loaded.export_dir, rec.id)
    assert path.is_file()
    assert _events(loaded, event="export.downloaded")[0] == "export.downloaded"
    assert [r.id for r in jobs.list_exports(engine, user="ann")] == [rec.id]
    assert jobs.list_exports(engine, user="bob") == []


def test_a_silent_worker_is_failed_its_slot_freed_and_leftovers_removed(
    loaded: Settings,
) -> None:
    engine = get_engine(loaded.db_url)
    old = utcnow() - timedelta(minutes=5)
    insert_export(
        engine,
        owner="ann",
        export_id="dead1",
        at=old,
        rows_done=50,
        file_path=str(loaded.export_dir / "dead1.csv"),
    )
    take_slot(engine, "ann", 0, "dead1", old)
    loaded.export_dir.mkdir(parents=True, exist_ok=True)
    leftover = loaded.export_dir / ".dead1.csv.abc.part"
    leftover.write_text("partial")
    assert jobs.reap_stale(engine, loaded) == 1
    assert jobs.reap_stale(engine, loaded) == 0
    rec = jobs.get_export(engine, export_id="dead1", user="ann", role="analyst")
    assert rec.status == "failed"
    assert "heartbeat" in (rec.error or "")
    assert not leftover.exists()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(export_slots)).scalar_one() == 0
    assert _events(loaded, export_id="dead1") == ["export.failed"]
    with pytest.raises(NotReady):
        _download(engine, loaded.export_dir, "dead1")


def test_retention_removes_old_files_and_marks_them_expired(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics", format="csv.gz"),
        interface="cli",
        wait=True,
    )
    path = Path(rec.file_path or "")
    assert path.name.endswith(".csv.gz") and path.is_file()
    assert jobs.prune_exports(engine, loaded) == 0
    later = utcnow() + timedelta(days=loaded.export_retention_days + 1)
    assert jobs.prune_exports(engine, loaded, now=later) == 1
    assert not path.exists()
    assert jobs.get_export(engine, export_id=rec.id, user="ann", role="analyst").status == "expired"
    assert _events(loaded, export_id=rec.id)[-1] == "export.expired"
    with pytest.raises(NotReady):
        _download(engine, loaded.export_dir, rec.id)


def test_prune_never_deletes_a_file_outside_the_export_folder(
    loaded: Settings, tmp_path: Path
) -> None:
    engine = get_engine(loaded.db_url)
    out = tmp_path / "mine.csv"
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="cli",
        wait=True,
        out_path=out,
    )
    later = utcnow() + timedelta(days=loaded.export_retention_days + 1)
    assert jobs.prune_exports(engine, loaded, now=later) == 1
    assert out.is_file()
    assert jobs.get_export(engine, export_id=rec.id, user="ann", role="analyst").status == "expired"


def test_a_cancel_that_arrives_after_the_last_chunk_still_wins(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)

    def cancel_at_end(rows: int, total: int | None) -> None:
        if total and rows == total:
            with engine.begin() as conn:
                conn.execute(update(exports).values(cancel_requested=True))

    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="cli",
        wait=True,
        on_progress=cancel_at_end,
    )
    assert rec.status == "cancelled"
    assert not Path(rec.file_path or "").exists()


def test_the_heartbeat_beats_while_a_slow_count_runs(
    loaded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(loaded.db_url)
    real_count = running.count_rows

    def slow_count(conn, plan):  # type: ignore[no-untyped-def]
        time.sleep(1.5)
        return real_count(conn, plan)

    monkeypatch.setattr(running, "count_rows", slow_count)
    monkeypatch.setattr(running, "HEARTBEAT_EVERY_S", 0.2)
    rec = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="api",
    )
    time.sleep(0.3)
    with engine.connect() as conn:
        first = conn.execute(select(exports.c.heartbeat_at)).scalar_one()
    time.sleep(0.8)
    with engine.connect() as conn:
        second = conn.execute(select(exports.c.heartbeat_at)).scalar_one()
    assert second > first
    assert jobs.wait_for(engine, rec.id, timeout=60).status == "succeeded"


def test_an_export_failed_by_the_reaper_never_comes_back_as_succeeded(loaded: Settings) -> None:
    engine = get_engine(loaded.db_url)
    settings = loaded.model_copy(update={"chunk_rows": 20})

    def reaped_meanwhile(rows: int, total: int | None) -> None:
        if rows == 20:
            with engine.begin() as conn:
                conn.execute(update(exports).values(status="failed", error="no heartbeat"))

    rec = jobs.submit_export(
        engine,
        settings,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="evaluation-results"),
        interface="cli",
        wait=True,
        on_progress=reaped_meanwhile,
    )
    assert rec.status == "failed"
    assert not Path(rec.file_path or "").exists()
    assert "export.succeeded" not in _events(loaded, export_id=rec.id)
    assert list(settings.export_dir.iterdir()) == []


def test_a_run_taken_over_by_a_newer_attempt_neither_finishes_the_export_nor_touches_its_file(
    loaded: Settings,
) -> None:
    engine = get_engine(loaded.db_url)
    settings = loaded.model_copy(update={"chunk_rows": 20})

    def taken_over_at_the_end(rows: int, total: int | None) -> None:
        if total and rows == total:  # the last chunk is written: another worker starts a new run
            with engine.begin() as conn:
                conn.execute(update(exports).values(attempt=exports.c.attempt + 1))

    rec = jobs.submit_export(
        engine,
        settings,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="evaluation-results"),
        interface="cli",
        wait=True,
        on_progress=taken_over_at_the_end,
    )
    assert rec.status == "running"  # the newer run will finish it
    assert Path(rec.file_path or "").exists()  # and publishes at the same path: left alone
    assert "export.succeeded" not in _events(loaded, export_id=rec.id)
    # Running that job again after it ended changes nothing.
    with engine.begin() as conn:
        conn.execute(update(exports).values(status="failed", error="gone"))
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    running.run_job(engine, settings, rec.id, plan, Path(rec.file_path or ""), None)
    assert jobs.get_export(engine, export_id=rec.id, user="ann", role="analyst").status == "failed"


def test_only_files_in_the_export_folder_are_served(loaded: Settings, tmp_path: Path) -> None:
    engine = get_engine(loaded.db_url)
    mine = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="cli",
        wait=True,
        out_path=tmp_path / "mine.csv",
    )
    with pytest.raises(NotReady, match="file of its own"):
        _download(engine, loaded.export_dir, mine.id)
    kept = jobs.submit_export(
        engine,
        loaded,
        user="ann",
        role="analyst",
        request=ExportRequest(dataset="performance-metrics"),
        interface="api",
        wait=True,
    )
    path = Path(kept.file_path or "")
    secret = loaded.data_dir / "secret.key"
    secret.write_text("do not serve")
    path.unlink()
    path.symlink_to(secret)  # a file swapped for a link to something else
    with pytest.raises(NotReady):
        _download(engine, loaded.export_dir, kept.id)
    with engine.begin() as conn:  # a row pointing elsewhere is not followed either
        conn.execute(update(exports).where(exports.c.id == kept.id).values(file_path=str(secret)))
    with pytest.raises(NotReady):
        _download(engine, loaded.export_dir, kept.id)


def test_only_finished_exports_kept_in_the_export_folder_are_downloadable(
    settings: Settings, tmp_path: Path
) -> None:
    """The rule of the History page's links is the one ``open_download`` (the API) applies."""
    engine = get_engine(settings.db_url)
    kept = settings.export_dir / "kept1.csv"
    elsewhere = tmp_path / "mine.csv"  # a CLI or notebook --out file
    settings.export_dir.mkdir(parents=True, exist_ok=True)
    for path in (kept, elsewhere):
        path.write_text("a\n1\n")
    rows = {
        "kept1": ("succeeded", kept),
        "mine1": ("succeeded", elsewhere),
        "busy1": ("running", settings.export_dir / "busy1.csv"),
        "none1": ("succeeded", None),
    }
    for export_id, (status, path) in rows.items():
        insert_export(
            engine,
            owner="ann",
            export_id=export_id,
            status=status,
            file_path=None if path is None else str(path),
        )
    records = {r.id: r for r in jobs.list_exports(engine, user="ann")}
    downloadable = {
        i for i, r in records.items() if jobs.downloadable(r, Storage(settings.export_dir))
    }
    assert downloadable == {"kept1"}

    for export_id in rows:
        if export_id in downloadable:
            assert _download(engine, settings.export_dir, export_id) == kept
        else:
            with pytest.raises(NotReady):
                _download(engine, settings.export_dir, export_id)
