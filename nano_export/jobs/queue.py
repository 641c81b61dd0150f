"""The procrastinate runner: on PostgreSQL an export is a job that any worker process may run.

Submitting defers a job carrying only the export id; the worker rebuilds the plan from the row's
frozen spec and runs it with :func:`~nano_export.jobs.running.run_job`, so progress, cancel, the
per-user limit, statuses and audit stay those of the thread runner. Workers keep heartbeats in
procrastinate's tables; a periodic task of every worker looks for jobs whose worker went silent for
``worker_stall_timeout_s`` and runs them again from the start (audited ``export.retried``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine, update
from sqlalchemy.engine import make_url

from nano_export.db import get_engine, utcnow
from nano_export.errors import NotFound
from nano_export.exporter import plan_export
from nano_export.jobs.files import final_path
from nano_export.jobs.limits import remove_leftovers
from nano_export.jobs.records import audit_job, finish, load, reason_of, worker_name
from nano_export.jobs.running import run_job
from nano_export.models import ACTIVE_STATUSES, ExportRequest
from nano_export.schema import exports
from nano_export.settings import Settings

if TYPE_CHECKING:  # procrastinate is imported where it is used: SQLite never needs it
    from procrastinate import App

log = logging.getLogger(__name__)

EXPORT_TASK = "nano_export.export"
RETRY_TASK = "nano_export.retry_stalled"
EXPORT_QUEUE = "exports"
PERIODIC_QUEUE = "periodic"
RETRY_CRON = "* * * * * */2"  # croniter's sixth field is seconds

#: Registers more tasks on a worker's app; returns the queues they use (the worker listens to them).
AddTasks = Callable[["App", Engine, Settings], list[str]]


def conninfo(db_url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (procrastinate talks to psycopg directly)."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


_deferrers: dict[str, App] = {}
_deferrers_lock = threading.Lock()


def _deferrer(db_url: str) -> App:
    """One synchronous procrastinate app per database and process, opened on first use."""
    from procrastinate import App, SyncPsycopgConnector

    with _deferrers_lock:
        app = _deferrers.get(db_url)
        if app is None:
            connector = SyncPsycopgConnector(conninfo=conninfo(db_url), min_size=1, max_size=4)
            app = App(connector=connector).open()
            _deferrers[db_url] = app
    return app


def defer_export(settings: Settings, export_id: str) -> int:
    """Put the export's job on the queue; returns procrastinate's job id."""
    task = _deferrer(settings.db_url).configure_task(EXPORT_TASK, queue=EXPORT_QUEUE)
    return task.defer(export_id=export_id)


def run_queued(engine: Engine, settings: Settings, export_id: str) -> None:
    """The export job's body: rebuild the plan from the frozen row and run it to its end."""
    try:
        rec = load(engine, export_id)
    except NotFound:
        log.warning("job for a missing export", extra={"export_id": export_id})
        return
    if rec.status not in ACTIVE_STATUSES:
        return  # cancelled while queued, or failed elsewhere
    try:
        plan = plan_export(
            ExportRequest(
                dataset=rec.dataset,
                filters=rec.filters,
                columns=rec.columns,
                rename=rec.rename,
                privacy=rec.privacy,
                format=rec.format,
                excel=rec.excel,
            )
        )
    except Exception as exc:  # the dataset or its columns changed since it was accepted
        reason = reason_of(exc)
        with engine.begin() as conn:
            if finish(conn, export_id, status="failed", values={"error": reason}):
                audit_job(conn, rec, "export.failed", reason=reason)
        return
    # This worker writes into its own export folder (its staging area before the store), which
    # need not be the folder of the process that accepted the export.
    path = final_path(settings.export_dir, export_id, rec.format)
    # A run that died left its temporary file beside the final path; this run starts afresh.
    remove_leftovers(str(path))
    run_job(engine, settings, export_id, plan, path, None)


def requeue_stalled(engine: Engine, *, export_id: str, reason: str) -> bool:
    """Put an export whose worker went silent back to ``queued``, audited ``export.retried``.

    Called before its job is retried, while no live worker runs it. False when the export
    already ended (then there is nothing to run again).
    """
    try:
        rec = load(engine, export_id)
    except NotFound:
        return False
    with engine.begin() as conn:
        row = conn.execute(
            update(exports)
            .where(
                exports.c.id == export_id,
                exports.c.runner == "queue",
                exports.c.status.in_(ACTIVE_STATUSES),
            )
            .values(status="queued", rows_done=0, heartbeat_at=utcnow())
            .returning(exports.c.worker, exports.c.attempt, exports.c.file_path)
        ).first()
        if row is None:
            return False
        audit_job(
            conn,
            rec,
            "export.retried",
            rows=rec.rows_done,
            reason=reason,
            details={"worker": row.worker, "attempt": row.attempt},
        )
    remove_leftovers(row.file_path)
    log.warning("export retried", extra={"export_id": export_id, "reason": reason})
    return True


async def retry_stalled(app: App, engine: Engine, settings: Settings) -> int:
    """Run again, from the start, every export job whose worker stopped sending heartbeats."""
    from procrastinate.exceptions import ProcrastinateException

    timeout = settings.worker_stall_timeout_s
    stalled = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=timeout, task_name=EXPORT_TASK
    )
    retried = 0
    for job in stalled:
        export_id = str(job.task_kwargs.get("export_id", ""))
        reason = (
            f"its worker stopped sending heartbeats for more than {timeout:g} s; "
            "running it again from the start"
        )
        await asyncio.to_thread(requeue_stalled, engine, export_id=export_id, reason=reason)
        try:
            await app.job_manager.retry_job(job)
        except ProcrastinateException:  # another worker retried it first
            continue
        retried += 1
    return retried


def build_app(settings: Settings, *, add_tasks: AddTasks | None = None) -> tuple[App, list[str]]:
    """The worker's procrastinate app (the export task, the stalled-job check, and extras) and
    the queues it serves: a worker only takes jobs whose task it has."""
    from procrastinate import App, PsycopgConnector

    engine = get_engine(settings.db_url)
    app = App(connector=PsycopgConnector(conninfo=conninfo(settings.db_url)))

    @app.task(name=EXPORT_TASK, queue=EXPORT_QUEUE)
    def export(export_id: str) -> None:
        run_queued(engine, settings, export_id)

    # One lock: two slow checks never retry the same job twice.
    @app.periodic(cron=RETRY_CRON, periodic_id="stalled")
    @app.task(name=RETRY_TASK, queue=PERIODIC_QUEUE, lock=RETRY_TASK)
    async def stalled(timestamp: int) -> None:
        await retry_stalled(app, engine, settings)

    queues = [EXPORT_QUEUE, PERIODIC_QUEUE]
    if add_tasks is not None:
        queues += add_tasks(app, engine, settings)
    return app, queues


async def run_worker(
    settings: Settings,
    *,
    concurrency: int,
    add_tasks: AddTasks | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run a worker until it is stopped (a signal, or cancelling this coroutine).

    On stop it takes no new job and waits for the exports it runs to finish, then leaves.
    """
    app, queues = build_app(settings, add_tasks=add_tasks)
    stall = settings.worker_stall_timeout_s
    async with app.open_async():
        await app.run_worker_async(
            queues=queues,
            name=worker_name(),
            concurrency=concurrency,
            install_signal_handlers=install_signal_handlers,
            update_heartbeat_interval=max(0.5, stall / 5),
            stalled_worker_timeout=stall,
            fetch_job_polling_interval=2.0,
            delete_jobs="successful",
        )


class EmbeddedWorker:
    """A worker in a daemon thread of this process, with an event loop of its own."""

    def __init__(self, settings: Settings, add_tasks: AddTasks | None) -> None:
        self._settings = settings
        self._add_tasks = add_tasks
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="embedded-worker", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(
            run_worker(
                self._settings,
                concurrency=self._settings.worker_concurrency,
                add_tasks=self._add_tasks,
                install_signal_handlers=False,
            )
        )
        self._ready.set()
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("embedded worker stopped")
        finally:
            self._loop.close()

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()
        self._ready.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs, let running exports finish (up to ``timeout`` s), end the thread."""
        if self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self.thread.join(timeout=timeout)


_embedded: dict[str, EmbeddedWorker] = {}
_embedded_lock = threading.Lock()


def start_embedded(settings: Settings, *, add_tasks: AddTasks | None = None) -> bool:
    """Start this process's embedded worker once, when the settings call for one.

    Only on PostgreSQL and with ``NANO_EXPORT_EMBEDDED_WORKER`` on. True when this call started it.
    """
    if not (settings.uses_queue and settings.embedded_worker):
        return False
    with _embedded_lock:
        running = _embedded.get(settings.db_url)
        if running is not None and running.thread.is_alive():
            return False
        worker = EmbeddedWorker(settings, add_tasks)
        _embedded[settings.db_url] = worker
        worker.start()
    log.info("embedded worker started", extra={"worker": worker_name()})
    return True


def stop_embedded(timeout: float = 30.0) -> None:
    """Stop every embedded worker of this process and close its deferring connections."""
    with _embedded_lock:
        workers = list(_embedded.values())
        _embedded.clear()
    for worker in workers:
        worker.stop(timeout)
    with _deferrers_lock:
        apps = list(_deferrers.values())
        _deferrers.clear()
    for app in apps:
        app.close()
