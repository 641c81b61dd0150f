"""Prometheus metrics of the exports, read from the shared ``exports`` table at scrape time.

Every dashboard and worker shares that table, so any process answers ``GET /api/metrics`` with the
same, installation-wide values; in-process counters would only know their own process's exports.
One :class:`ExportsCollector` runs three small aggregate queries per scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Engine, Float, case, cast, func, select

from nano_export.models import ExportStatus
from nano_export.schema import exports

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
STATUSES: Final[tuple[ExportStatus, ...]] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
)
#: Statuses of exports whose file was written completely.
WRITTEN: Final = ("succeeded", "expired")
DURATION_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Failure reasons grouped into a few labels (the error text itself may be long or specific).
FAILURE_KINDS: Final[tuple[tuple[str, Callable[[str], bool]], ...]] = (
    ("worker_lost", lambda e: e.startswith("the worker stopped responding")),
    ("storage", lambda e: e.startswith(("could not store", "could not reach"))),
    ("disk_full", lambda e: "No space left" in e),
    ("database", lambda e: "(sqlite3." in e or "(psycopg" in e or "OperationalError" in e),
)


def failure_kind(error: str | None) -> str:
    """The label of a failed export's error: one of FAILURE_KINDS, or ``other``."""
    text = error or ""
    return next((label for label, matches in FAILURE_KINDS if matches(text)), "other")


def _duration_s(engine: Engine) -> ColumnElement[float]:
    finished, started = exports.c.finished_at, exports.c.started_at
    if engine.dialect.name == "sqlite":
        return (func.julianday(finished) - func.julianday(started)) * 86400.0
    return cast(func.extract("epoch", finished - started), Float)


class ExportsCollector(Collector):
    """Exports by status, rows and bytes written, durations and failures, from the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """The metric families, computed now."""
        duration = _duration_s(self.engine)
        written = exports.c.status.in_(WRITTEN)
        timed = written & exports.c.started_at.is_not(None) & exports.c.finished_at.is_not(None)
        buckets = [func.sum(case((duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        with self.engine.connect() as conn:
            by_status = {
                status: (count, rows, size)
                for status, count, rows, size in conn.execute(
                    select(
                        exports.c.status,
                        func.count(),
                        func.coalesce(func.sum(exports.c.rows_done), 0),
                        func.coalesce(func.sum(exports.c.bytes), 0),
                    ).group_by(exports.c.status)
                )
            }
            timing = conn.execute(
                select(func.count(), func.coalesce(func.sum(duration), 0.0), *buckets).where(timed)
            ).one()
            errors = conn.execute(
                select(exports.c.error, func.count())
                .where(exports.c.status == "failed")
                .group_by(exports.c.error)
            ).all()

        exports_by_status = GaugeMetricFamily(
            "nano_export_exports", "Exports in the database by status.", labels=["status"]
        )
        for status in STATUSES:
            exports_by_status.add_metric([status], by_status.get(status, (0, 0, 0))[0])
        yield exports_by_status
        for status in ("running", "queued"):
            yield GaugeMetricFamily(
                f"nano_export_exports_{status}",
                f"Exports {status} now, across all processes.",
                value=by_status.get(status, (0, 0, 0))[0],
            )
        yield CounterMetricFamily(
            "nano_export_rows_written",
            "Rows written to finished export files.",
            value=sum(int(by_status.get(s, (0, 0, 0))[1]) for s in WRITTEN),
        )
        yield CounterMetricFamily(
            "nano_export_bytes_written",
            "Bytes of finished export files.",
            value=sum(int(by_status.get(s, (0, 0, 0))[2]) for s in WRITTEN),
        )
        count, total, *cumulative = timing
        yield HistogramMetricFamily(
            "nano_export_export_duration_seconds",
            "Run time of finished exports, from start to the file being stored.",
            buckets=[
                *((_le(b), int(n or 0)) for b, n in zip(DURATION_BUCKETS, cumulative, strict=True)),
                ("+Inf", int(count)),
            ],
            sum_value=float(total or 0.0),
        )
        failures = CounterMetricFamily(
            "nano_export_export_failures",
            "Failed exports by reason.",
            labels=["reason"],
        )
        by_kind = dict.fromkeys([label for label, _ in FAILURE_KINDS] + ["other"], 0)
        for error, n in errors:
            by_kind[failure_kind(error)] += int(n)
        for label, n in by_kind.items():
            failures.add_metric([label], n)
        yield failures


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


def render(engine: Engine) -> bytes:
    """The Prometheus text exposition of :class:`ExportsCollector` over ``engine``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExportsCollector(engine))
    return generate_latest(registry)
