"""Running schedules end to end on both databases: claim → export as the owner → one email."""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import insert_executions, write_users
from smtp_server import Inbox, free_port, smtp_server
from sqlalchemy import Engine, func, select

from nano_export import audit
from nano_export.cadence import make_timing
from nano_export.db import utcnow
from nano_export.models import AuditEvent, ExportRequest, FilterSpec
from nano_export.scheduler import run_due, run_now
from nano_export.schedules import create_schedule, get_schedule, set_paused
from nano_export.schema import exports
from nano_export.settings import Settings

ROWS = 30  # factories: providers cycle openai, anthropic, ollama → 10 openai rows


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def loaded(settings: Settings, engine: Engine) -> Settings:
    write_users(settings, {"ann": "analyst", "ada": "admin"})
    insert_executions(engine, ROWS)
    return settings


def with_smtp(settings: Settings, port: int, **extra: object) -> Settings:
    return settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "nx@example.org", **extra}
    )


def add_due(engine: Engine, settings: Settings, name: str = "openai-daily", **kw: object) -> None:
    """A daily schedule created three days ago, so its slot (and two more) are overdue."""
    request = kw.pop(
        "request",
        ExportRequest(dataset="evaluation-results", filters=FilterSpec(provider=("openai",))),
    )
    create_schedule(
        engine,
        settings,
        name=name,
        owner=str(kw.pop("owner", "ann")),
        request=request,  # type: ignore[arg-type]
        timing=make_timing("daily", at="06:00", tz="Europe/Berlin"),
        recipients=["team@example.org", "lead@example.org"],
        interface="cli",
        now=utcnow() - timedelta(days=3),
    )


def events(engine: Engine, event: str) -> list[AuditEvent]:
    with engine.connect() as conn:
        return audit.list_events(conn, event=event)


def gz_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8"))))


def test_due_schedule_exports_once_and_mails_the_gzip_file_with_a_link(
    engine: Engine, loaded: Settings, inbox: Inbox
) -> None:
    settings = with_smtp(loaded, inbox.port, base_url="https://nx.example.org")
    add_due(engine, settings)
    (result,) = run_due(engine, settings, sleep=lambda _s: None)
    assert result.error is None and result.email == "sent"
    rec = result.export
    assert rec is not None and rec.status == "succeeded" and rec.rows_done == 10
    assert rec.owner == "ann" and rec.interface == "scheduler"

    (msg,) = inbox.messages
    assert inbox.recipients == [["team@example.org", "lead@example.org"]]
    assert msg["Subject"] == "[nano-export] openai-daily: 10 rows"
    text = msg.get_body(("plain",)).get_content()
    assert f"https://nx.example.org/history?export={rec.id}" in text
    assert "provider = openai" in text
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == f"{rec.file_name}.gz"
    rows = gz_rows(attachment.get_content())
    assert len(rows) == rec.rows_done
    assert {r["provider"] for r in rows} == {"openai"}
    assert gzip.decompress(attachment.get_content()) == Path(rec.file_path or "").read_bytes()

    sched = get_schedule(engine, name="openai-daily")
    assert sched.last_export_id == rec.id
    assert sched.next_run_at > utcnow()
    (run,) = events(engine, "schedule.run")
    assert (run.export_id, run.rows, run.actor) == (rec.id, 10, "ann")
    (sent,) = events(engine, "email.sent")
    assert sent.export_id == rec.id and sent.details["attached"] is True
    assert [e.interface for e in events(engine, "export.succeeded")] == ["scheduler"]

    # Three missed slots ran once; nothing is due any more.
    assert run_due(engine, settings, sleep=lambda _s: None) == []
    assert len(inbox.messages) == 1


def test_gzip_export_is_attached_as_is(engine: Engine, loaded: Settings, inbox: Inbox) -> None:
    settings = with_smtp(loaded, inbox.port)
    add_due(engine, settings, request=ExportRequest(dataset="performance-metrics", format="csv.gz"))
    (result,) = run_due(engine, settings, sleep=lambda _s: None)
    assert result.export is not None
    (attachment,) = list(inbox.messages[0].iter_attachments())
    assert attachment.get_content() == Path(result.export.file_path or "").read_bytes()
    assert len(gz_rows(attachment.get_content())) == ROWS


def test_export_over_the_attachment_limit_is_linked_not_attached(
    engine: Engine, loaded: Settings, inbox: Inbox
) -> None:
    settings = with_smtp(loaded, inbox.port, email_attach_max_mb=0.0001)
    add_due(engine, settings)
    run_due(engine, settings, sleep=lambda _s: None)
    (msg,) = inbox.messages
    assert list(msg.iter_attachments()) == []
    assert "download it from the link" in msg.get_body(("plain",)).get_content()
    assert events(engine, "email.sent")[0].details["attached"] is False


def test_paused_schedule_sends_nothing(engine: Engine, loaded: Settings, inbox: Inbox) -> None:
    settings = with_smtp(loaded, inbox.port)
    add_due(engine, settings)
    set_paused(engine, name="openai-daily", paused=True, interface="cli")
    assert run_due(engine, settings, sleep=lambda _s: None) == []
    assert inbox.messages == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(exports)).scalar_one() == 0


def test_refused_smtp_is_retried_audited_and_the_export_is_kept(
    engine: Engine, loaded: Settings
) -> None:
    settings = with_smtp(loaded, free_port())
    add_due(engine, settings)
    waits: list[float] = []
    (result,) = run_due(engine, settings, sleep=waits.append)
    assert result.email == "failed"
    assert waits == [1.0, 2.0, 4.0]
    rec = result.export
    assert rec is not None and rec.status == "succeeded"
    assert Path(rec.file_path or "").is_file()
    (failed,) = events(engine, "email.failed")
    assert failed.export_id == rec.id and failed.details["attempts"] == 4
    assert "ConnectionRefused" in (failed.reason or "")
    assert events(engine, "email.sent") == []
    assert get_schedule(engine, name="openai-daily").last_export_id == rec.id


def test_with_email_disabled_the_run_still_happens_and_is_audited(
    engine: Engine, loaded: Settings
) -> None:
    settings = loaded.model_copy(update={"smtp_host": ""})
    add_due(engine, settings)
    (result,) = run_due(engine, settings)
    assert result.email == "disabled" and result.export is not None
    assert result.export.status == "succeeded"
    assert [e.export_id for e in events(engine, "schedule.run")] == [result.export.id]
    assert events(engine, "email.sent") == events(engine, "email.failed") == []


def test_run_now_runs_outside_the_cadence_without_moving_the_next_run(
    engine: Engine, loaded: Settings, inbox: Inbox
) -> None:
    settings = with_smtp(loaded, inbox.port)
    add_due(engine, settings)
    before = get_schedule(engine, name="openai-daily").next_run_at
    result = run_now(engine, settings, name="openai-daily", sleep=lambda _s: None)
    assert result.email == "sent" and len(inbox.messages) == 1
    after = get_schedule(engine, name="openai-daily")
    assert after.next_run_at == before and after.last_run_at is not None


def test_run_of_an_owner_who_left_is_audited_and_sends_nothing(
    engine: Engine, loaded: Settings, inbox: Inbox
) -> None:
    settings = with_smtp(loaded, inbox.port)
    add_due(engine, settings)
    write_users(settings, {"ada": "admin"})  # ann is gone
    (result,) = run_due(engine, settings, sleep=lambda _s: None)
    assert result.export is None and "no longer a user" in (result.error or "")
    (run,) = events(engine, "schedule.run")
    assert run.export_id is None and "no longer a user" in (run.reason or "")
    assert inbox.messages == []


def test_owner_demoted_below_the_schedules_privacy_is_refused_at_run_time(
    engine: Engine, loaded: Settings, inbox: Inbox
) -> None:
    settings = with_smtp(loaded, inbox.port)
    add_due(engine, settings, owner="ada", request=ExportRequest(dataset="evaluation-results",
                                                              privacy="full"))  # fmt: skip
    write_users(settings, {"ada": "viewer"})
    (result,) = run_due(engine, settings, sleep=lambda _s: None)
    assert result.export is None and "'full' was requested" in (result.error or "")
    assert [e.actor for e in events(engine, "export.denied")] == ["ada"]
    assert inbox.messages == []


def test_the_embedded_scheduler_runs_a_due_schedule_once_per_process(
    loaded: Settings, engine: Engine
) -> None:
    from nano_export import scheduler

    add_due(engine, loaded)
    assert scheduler.overdue(engine)
    if loaded.uses_queue:
        # On PostgreSQL the workers' periodic task runs schedules: no thread of the dashboard's.
        assert not scheduler.start_embedded(loaded, interval=0.2)
        assert not scheduler.embedded_running(loaded)
        return
    try:
        assert scheduler.start_embedded(loaded, interval=0.2)
        assert scheduler.start_embedded(loaded, interval=0.2)  # the same thread, not a second
        assert scheduler.embedded_running(loaded)
        deadline = time.monotonic() + 30
        while get_schedule(engine, name="openai-daily").last_export_id is None:
            assert time.monotonic() < deadline, "the embedded scheduler did not run it"
            time.sleep(0.1)
        assert not scheduler.overdue(engine)
    finally:
        scheduler.stop_embedded(loaded)
    assert not scheduler.embedded_running(loaded)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(exports)).scalar_one() == 1


def test_the_embedded_scheduler_stays_off_when_workers_run_schedules(loaded: Settings) -> None:
    from nano_export import scheduler

    off = loaded.model_copy(update={"embedded_worker": False})
    assert not scheduler.start_embedded(off)
    assert not scheduler.embedded_running(off)
