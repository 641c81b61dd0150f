"""Worker processes on PostgreSQL: export jobs, the stalled-job check, and due schedules.

``nano-export worker`` and the dashboard's embedded worker both run :func:`add_schedule_task`'s
periodic task: procrastinate defers each tick once for all workers, and the schedule's atomic claim
(``scheduler.claim``) makes a due run happen exactly once however many workers share the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import Engine

from nano_export import scheduler
from nano_export.jobs import queue
from nano_export.settings import Settings

if TYPE_CHECKING:
    from procrastinate import App

SCHEDULES_TASK = "nano_export.run_schedules"
SCHEDULES_QUEUE = "schedules"
SCHEDULES_CRON = "* * * * * */10"  # every ten seconds (croniter's sixth field)


def add_schedule_task(app: App, engine: Engine, settings: Settings) -> list[str]:
    """Register the periodic task that runs due schedules (each tick on one worker only).

    It has a queue of its own: a worker started without it (the embedded worker a process starts
    on its first export) never takes these jobs.
    """

    @app.periodic(cron=SCHEDULES_CRON, periodic_id="schedules")
    @app.task(name=SCHEDULES_TASK, queue=SCHEDULES_QUEUE, lock=SCHEDULES_TASK)
    def run_schedules(timestamp: int) -> None:
        scheduler.run_due(engine, settings)

    return [SCHEDULES_QUEUE]


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM a clean exit (status 0) until the queue puts its own handlers in place.

    Without it, a worker stopped in the second it takes to start would be killed by the signal's
    default action (status -15): nothing runs yet that must finish, so stopping is right, but it
    is a stop, not a crash. The queue's handlers replace this one while it runs.

    The handler ends the process at once rather than raising ``SystemExit``: the signal can land
    anywhere in start-up, and an exception raised while a class is being created (procrastinate's
    import) reaches the interpreter as a ``RuntimeError`` and a traceback instead.
    """
    signal.signal(signal.SIGTERM, _exit_cleanly)


def _exit_cleanly(signum: int, _frame: FrameType | None) -> NoReturn:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a write the signal interrupted
            stream.flush()
    os.write(2, b"worker stopped\n")  # what the command says when it ends
    os._exit(0)


def run(settings: Settings, *, concurrency: int | None = None) -> None:
    """Run a worker in this process until SIGTERM or Ctrl-C; running exports finish first."""
    asyncio.run(
        queue.run_worker(
            settings,
            concurrency=concurrency or settings.worker_concurrency,
            add_tasks=add_schedule_task,
        )
    )


def start_embedded(settings: Settings) -> bool:
    """Start this process's embedded worker (with schedules) when the settings call for one."""
    return queue.start_embedded(settings, add_tasks=add_schedule_task)
