"""Scheduled exports: ``schedules add|list|pause|resume|remove|run`` and ``scheduler``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from nano_export import scheduler as runner
from nano_export import schedules as store
from nano_export import worker as workers
from nano_export.cadence import CADENCES, WEEKDAYS, make_timing
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app, setup_logging
from nano_export.cli.exports import DATASET_CHOICE, build_request, filter_options

log = logging.getLogger(__name__)


@click.group("schedules")
def schedules_group() -> None:
    """Saved exports that run daily or weekly and are emailed to recipients."""


@schedules_group.command("add")
@click.argument("name")
@click.option("--user", required=True, metavar="U", help="Owner; the export runs as this user.")
@click.argument("dataset", type=DATASET_CHOICE)
@filter_options
@click.option("--every", required=True, type=click.Choice(CADENCES), help="How often it runs.")
@click.option("--weekday", metavar="|".join(WEEKDAYS), help="Day of a weekly run (mon … sun).")
@click.option("--at", "at", required=True, metavar="HH:MM", help="Local time of the run.")
@click.option(
    "--tz", default="UTC", show_default=True, metavar="ZONE", help="IANA time zone of --at."
)
@click.option(
    "--email", "emails", multiple=True, required=True, metavar="ADDR", help="Recipient (repeat)."
)
@pass_app
@handle_errors
def add(
    app: AppContext,
    /,
    name: str,
    user: str,
    dataset: str,
    every: str,
    weekday: str | None,
    at: str,
    tz: str,
    emails: tuple[str, ...],
    **options: Any,
) -> None:
    """Save an export of DATASET as schedule NAME, owned by --user."""
    timing = make_timing(every, at=at, tz=tz, weekday=weekday)
    request = build_request(dataset, **options)
    sched = store.create_schedule(
        app.engine,
        app.settings,
        name=name,
        owner=user,
        request=request,
        timing=timing,
        recipients=emails,
        interface="cli",
    )
    click.echo(
        f"schedule {sched.name!r} added: {timing.describe()}, "
        f"next run {sched.next_run_at.astimezone(timing.tz):%Y-%m-%d %H:%M %Z}, "
        f"to {', '.join(sched.recipients)}"
    )


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List every schedule."""
    items = store.list_schedules(app.engine)
    if as_json:
        click.echo(json.dumps([s.public() for s in items], indent=2))
        return
    rows = []
    for s in items:
        rows.append(
            {
                "name": s.name,
                "owner": s.owner,
                "dataset": s.request.dataset,
                "when": s.timing.describe(),
                "email": ",".join(s.recipients),
                "state": "paused" if s.paused else "active",
                "next_run": s.next_run_at.isoformat(timespec="minutes"),
                "last_export": s.last_export_id or "",
            }
        )
    echo_table(rows, ["name", "owner", "dataset", "when", "email", "state", "next_run"])


@schedules_group.command("pause")
@click.argument("name")
@pass_app
@handle_errors
def pause(app: AppContext, name: str) -> None:
    """Stop running schedule NAME until it is resumed."""
    store.set_paused(app.engine, name=name, paused=True, interface="cli")
    click.echo(f"schedule {name!r} paused")


@schedules_group.command("resume")
@click.argument("name")
@pass_app
@handle_errors
def resume(app: AppContext, name: str) -> None:
    """Run schedule NAME again from its next slot."""
    sched = store.set_paused(app.engine, name=name, paused=False, interface="cli")
    click.echo(f"schedule {name!r} resumed, next run {sched.next_run_at.isoformat()}")


@schedules_group.command("remove")
@click.argument("name")
@pass_app
@handle_errors
def remove(app: AppContext, name: str) -> None:
    """Delete schedule NAME (its past exports are kept)."""
    store.remove_schedule(app.engine, name=name, interface="cli")
    click.echo(f"schedule {name!r} removed")


def _report(result: runner.RunResult) -> None:
    rec = result.export
    if rec is None or result.error:
        click.echo(f"{result.schedule}: failed: {result.error}", err=True)
        return
    click.echo(f"{result.schedule}: export {rec.id}, {rec.rows_done} rows, email {result.email}")
    sys.stdout.flush()


@schedules_group.command("run")
@click.argument("name")
@pass_app
@handle_errors
def run(app: AppContext, name: str) -> None:
    """Run schedule NAME now (its regular runs are unchanged); exit 1 if the export failed."""
    result = runner.run_now(app.engine, app.settings, name=name)
    _report(result)
    if result.error:
        sys.exit(1)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=runner.SCHEDULER_INTERVAL_S,
    hidden=True,
    help="Seconds between passes.",
)
@pass_app
@handle_errors
def scheduler(app: AppContext, once: bool, interval: float) -> None:
    """Run due schedules until stopped (SIGTERM or Ctrl-C); on PostgreSQL, start a worker."""
    if once:
        for result in runner.run_due(app.engine, app.settings):
            _report(result)
        return
    setup_logging(verbose=True)  # a service: what it runs is logged without -v
    if app.settings.uses_queue:
        # Schedules are a periodic task of the worker pool there: this process joins it.
        workers.stop_cleanly_on_sigterm()
        app.database()
        click.echo(
            "on PostgreSQL schedules run on workers: starting `nano-export worker`", err=True
        )
        workers.run(app.settings)
        click.echo("worker stopped", err=True)
        return
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"scheduler running every {interval:g} s; stop with Ctrl-C", err=True)
    runner.run_forever(app.engine, app.settings, stop=stop, interval=interval, on_result=_report)
    click.echo("scheduler stopped", err=True)


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(schedules_group)
    group.add_command(scheduler)
