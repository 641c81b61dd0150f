"""Running scheduled exports: claim a due run atomically, export as the owner, email the result.

A run is claim → export → email. Claiming moves ``next_run_at`` with one conditional UPDATE that
matches the value the scheduler read; only the process whose UPDATE changed a row runs it, so
several schedulers (CLI, dashboards) sharing a database never run a slot twice. The new
``next_run_at`` is computed from *now*, so slots missed while no scheduler was up run once.
The export is an ordinary export of the schedule's owner (``jobs.submit_export``): same limits,
same audit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Engine, update

from nano_export import audit, auth, mail
from nano_export.cadence import next_run
from nano_export.db import utcnow
from nano_export.errors import NanoExportError, PermissionDenied
from nano_export.filters import describe as describe_filters
from nano_export.jobs import submit_export
from nano_export.models import ExportRecord, Role
from nano_export.schedules import Schedule, due_schedules, editable_schedule
from nano_export.schema import schedules as table
from nano_export.settings import Settings

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_S = 30.0
EmailOutcome = Literal["sent", "failed", "disabled", "none"]


class RunResult(BaseModel):
    """What one run of a schedule did."""

    schedule: str
    export: ExportRecord | None = None
    email: EmailOutcome = "none"
    error: str | None = None


def claim(engine: Engine, sched: Schedule, *, now: datetime) -> bool:
    """Atomically take this due run; True for exactly one of any number of racing processes."""
    now = now.astimezone(UTC)  # SQLite stores the wall-clock digits: always write UTC
    new_next = next_run(sched.timing, after=now)
    with engine.begin() as conn:
        result = conn.execute(
            update(table)
            .where(
                table.c.id == sched.id,
                table.c.next_run_at == sched.next_run_at,
                table.c.paused.is_(False),
            )
            .values(next_run_at=new_next, last_run_at=now, updated_at=now)
        )
    claimed = result.rowcount == 1
    log.info(
        "schedule claim",
        extra={"schedule": sched.name, "claimed": claimed, "next_run_at": new_next.isoformat()},
    )
    return claimed


def export_link(settings: Settings, export_id: str) -> str:
    """The dashboard address of one export."""
    return f"{settings.base_url}/history?export={export_id}"


def _email(
    engine: Engine,
    settings: Settings,
    sched: Schedule,
    rec: ExportRecord,
    sleep: Callable[[float], None],
) -> EmailOutcome:
    if not mail.enabled(settings):
        return "disabled"
    path = Path(rec.file_path) if rec.file_path else None
    message = mail.compose(
        mail.ExportMail(
            schedule=sched.name,
            dataset=rec.dataset,
            rows=rec.rows_done,
            summary=describe_filters(rec.filters),
            link=export_link(settings, rec.id),
            file_path=path,
            file_name=rec.file_name,
            note=rec.note,
        ),
        sender=settings.smtp_from,
        recipients=sched.recipients,
        attach_max_mb=settings.email_attach_max_mb,
    )
    common: dict[str, Any] = {
        "actor": sched.owner,
        "interface": "scheduler",
        "export_id": rec.id,
        "dataset": rec.dataset,
        "privacy": rec.privacy,
        "rows": rec.rows_done,
    }
    details: dict[str, Any] = {"schedule": sched.name, "to": sched.recipients}
    try:
        attempts = mail.send(settings, message, sleep=sleep)
    except mail.MailFailed as exc:
        with engine.begin() as conn:
            audit.record(
                conn,
                event="email.failed",
                reason=str(exc),
                details={**details, "attempts": exc.attempts},
                **common,
            )
        return "failed"
    attached = any(True for _ in message.iter_attachments())
    with engine.begin() as conn:
        audit.record(
            conn,
            event="email.sent",
            details={**details, "attempts": attempts, "attached": attached},
            **common,
        )
    return "sent"


def run_schedule(
    engine: Engine,
    settings: Settings,
    sched: Schedule,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Run one (already claimed) schedule: export as its owner, then email. Never raises for
    domain errors: the outcome is audited ``schedule.run`` and returned."""
    base: dict[str, Any] = {"actor": sched.owner, "interface": "scheduler"}
    role = auth.role_of(engine, sched.owner)
    rec: ExportRecord | None = None
    error: str | None = None
    try:
        if role is None:
            raise PermissionDenied(f"owner {sched.owner!r} is no longer a user")
        rec = submit_export(
            engine,
            settings,
            user=sched.owner,
            role=role,
            request=sched.request,
            interface="scheduler",
            wait=True,
        )
        if rec.status != "succeeded":
            error = f"export {rec.status}: {rec.error or 'no reason given'}"
    except NanoExportError as exc:
        error = str(exc)
    with engine.begin() as conn:
        if rec is not None:
            conn.execute(update(table).where(table.c.id == sched.id).values(last_export_id=rec.id))
        audit.record(
            conn,
            event="schedule.run",
            export_id=rec.id if rec else None,
            dataset=sched.request.dataset,
            privacy=sched.request.privacy,
            rows=rec.rows_done if rec and rec.status == "succeeded" else None,
            reason=error,
            details={"schedule": sched.name, "status": rec.status if rec else "not started"},
            **base,
        )
    outcome: EmailOutcome = "none"
    if rec is not None and error is None:
        outcome = _email(engine, settings, sched, rec, sleep)
    log.info(
        "schedule run",
        extra={"schedule": sched.name, "export_id": rec.id if rec else None, "email": outcome},
    )
    return RunResult(schedule=sched.name, export=rec, email=outcome, error=error)


def run_now(
    engine: Engine,
    settings: Settings,
    *,
    name: str,
    actor: str | None = None,
    role: Role | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Run a schedule at once, outside its cadence (its next regular run is unchanged)."""
    sched = editable_schedule(engine, name, actor, role)
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == sched.id).values(last_run_at=utcnow()))
    return run_schedule(engine, settings, sched, sleep=sleep)


def run_due(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RunResult]:
    """Claim and run every schedule due at ``now``; those another process claimed are skipped."""
    now = (now or utcnow()).astimezone(UTC)
    results = []
    for sched in due_schedules(engine, now=now):
        if claim(engine, sched, now=now):
            results.append(run_schedule(engine, settings, sched, sleep=sleep))
    return results


def run_forever(
    engine: Engine,
    settings: Settings,
    *,
    stop: threading.Event,
    interval: float = SCHEDULER_INTERVAL_S,
    on_result: Callable[[RunResult], None] | None = None,
) -> None:
    """Run due schedules every ``interval`` seconds until ``stop`` is set.

    A run in progress when ``stop`` is set finishes first; ``on_result`` sees each run's outcome.
    """

    def pause(seconds: float) -> None:  # mail retries wake up when asked to stop
        stop.wait(seconds)

    log.info("scheduler started", extra={"interval_s": interval})
    while not stop.is_set():
        try:
            for result in run_due(engine, settings, sleep=pause):
                if on_result is not None:
                    on_result(result)
        except Exception:  # a database outage must not end the loop
            log.exception("scheduler pass failed")
        stop.wait(interval)
    log.info("scheduler stopped")


_embedded_lock = threading.Lock()
_embedded: dict[str, tuple[threading.Thread, threading.Event]] = {}
#: Overdue by this much, a schedule shows that no scheduler runs (a pass may take a while).
OVERDUE_AFTER_S = 5 * SCHEDULER_INTERVAL_S


def start_embedded(settings: Settings, *, interval: float = SCHEDULER_INTERVAL_S) -> bool:
    """Run due schedules in a daemon thread of this process, once per process and database.

    For the single-machine setup (SQLite): the dashboard runs what is due without a separate
    ``nano-export scheduler``. Off when ``EMBEDDED_WORKER`` is false, and on PostgreSQL, where the
    workers' periodic task runs the schedules (the dashboard's embedded worker among them).
    Several processes doing this are safe: each run is claimed atomically. Returns whether the
    thread runs.
    """
    if not settings.embedded_worker or settings.uses_queue:
        return False
    from nano_export.db import get_engine

    with _embedded_lock:
        if not embedded_running(settings):
            stop = threading.Event()
            thread = threading.Thread(
                target=run_forever,
                args=(get_engine(settings.db_url), settings),
                kwargs={"stop": stop, "interval": interval},
                name="nano-export-scheduler",
                daemon=True,
            )
            thread.start()
            _embedded[settings.db_url] = (thread, stop)
    return True


def stop_embedded(settings: Settings, *, timeout: float = 10.0) -> None:
    """Stop this process's scheduler thread of ``settings``' database, if there is one."""
    with _embedded_lock:
        found = _embedded.pop(settings.db_url, None)
    if found is not None:
        thread, stop = found
        stop.set()
        thread.join(timeout)


def embedded_running(settings: Settings) -> bool:
    """Whether this process runs the schedules of ``settings``' database (``start_embedded``)."""
    found = _embedded.get(settings.db_url)
    return found is not None and found[0].is_alive()


def overdue(engine: Engine, *, now: datetime | None = None) -> list[Schedule]:
    """Active schedules whose run is well past due: a sign that no scheduler or worker runs."""
    now = (now or utcnow()).astimezone(UTC)
    limit = now - timedelta(seconds=OVERDUE_AFTER_S)
    return due_schedules(engine, now=limit)
