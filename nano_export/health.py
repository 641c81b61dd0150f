"""Whether this process can do its work: the database, the export store, workers and the queue.

``GET /api/health`` answers :func:`check` as JSON, 200 when everything it needs is up and 503
otherwise, with the reasons. Only the kind of each failure is shown (the endpoint is public);
the details go to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select, text

from nano_export.schema import exports
from nano_export.settings import Settings
from nano_export.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerStatus:
    """Who runs exports: ``kind`` (e.g. ``embedded threads``), how many are live, any problem."""

    kind: str
    live: int
    problem: str | None = None


@dataclass
class Health:
    """The answer of :func:`check`; ``ok`` is False when any reason is given (not a warning)."""

    database: str = "ok"
    storage: str = "ok"
    workers: WorkerStatus | None = None
    queued: int | None = None
    running: int | None = None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.reasons

    def public(self) -> dict[str, Any]:
        """The JSON body of ``GET /api/health``."""
        workers = None
        if self.workers is not None:
            workers = {"kind": self.workers.kind, "live": self.workers.live}
        return {
            "status": "ok" if self.ok else "unavailable",
            "database": self.database,
            "storage": self.storage,
            "workers": workers,
            "queued": self.queued,
            "running": self.running,
            "reasons": self.reasons,
            "warnings": self.warnings,
        }


def worker_status(engine: Engine, settings: Settings) -> WorkerStatus:
    """Who runs the exports of this installation, and how many of them are alive.

    On SQLite exports run in threads of the process that accepted them: this one is live by
    answering. On PostgreSQL they run on procrastinate workers (``nano-export worker``, or the
    dashboards' embedded ones); a worker is live while its heartbeat is younger than the stall
    timeout.
    """
    if not settings.uses_queue:
        return WorkerStatus(kind="embedded threads", live=1)
    with engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - make_interval(secs => :secs)"
            ),
            {"secs": float(settings.worker_stall_timeout_s)},
        ).scalar_one()
    problem = None
    if not live:
        problem = (
            "no export worker is running: exports wait in the queue until one starts "
            "(nano-export worker, or a dashboard with NANO_EXPORT_EMBEDDED_WORKER=true)"
        )
    return WorkerStatus(kind="procrastinate", live=int(live), problem=problem)


def _failure(what: str, exc: BaseException) -> str:
    log.warning("health check failed", extra={"component": what}, exc_info=True)
    return f"unavailable ({type(exc).__name__})"


def check(engine: Engine, settings: Settings, storage: Storage) -> Health:
    """Check the database (and count queued and running exports), the store and the workers."""
    health = Health()
    try:
        with engine.connect() as conn:
            counts: dict[str, int] = {
                status: int(n)
                for status, n in conn.execute(
                    select(exports.c.status, func.count())
                    .where(exports.c.status.in_(("queued", "running")))
                    .group_by(exports.c.status)
                )
            }
        health.queued = counts.get("queued", 0)
        health.running = counts.get("running", 0)
    except Exception as exc:
        health.database = _failure("database", exc)
        health.reasons.append("the database cannot be reached")
    try:
        storage.check()
    except Exception as exc:
        health.storage = _failure("storage", exc)
        health.reasons.append("the export store cannot be reached")
    if health.database == "ok":
        try:
            health.workers = worker_status(engine, settings)
        except Exception as exc:
            health.reasons.append(f"the workers cannot be counted: {_failure('workers', exc)}")
        else:
            # Pages and downloads still work without workers: a warning, not a 503 that would
            # take every replica out of the load balancer.
            if health.workers.problem:
                health.warnings.append(health.workers.problem)
    return health
