"""``nano-export worker``: run export jobs and schedules on PostgreSQL."""

from __future__ import annotations

import click

from nano_export import worker as workers
from nano_export.cli.common import AppContext, fail, handle_errors, pass_app, setup_logging


@click.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Exports run at once (default: NANO_EXPORT_WORKER_CONCURRENCY).",
)
@pass_app
@handle_errors
def worker(app: AppContext, concurrency: int | None) -> None:
    """Run export jobs and due schedules until stopped; SIGTERM lets running exports finish."""
    settings = app.settings
    if not settings.uses_queue:
        fail(
            "workers run on PostgreSQL; on SQLite exports run in the process that starts them "
            "(set NANO_EXPORT_DATABASE_URL or --db to a postgresql+psycopg:// URL)",
            2,
        )
    setup_logging(verbose=True)  # a service: its exports and the queue's events, without -v
    workers.stop_cleanly_on_sigterm()
    app.database()
    n = concurrency or settings.worker_concurrency
    click.echo(f"worker running {n} export(s) at once; stop with Ctrl-C", err=True)
    workers.run(settings, concurrency=n)
    click.echo("worker stopped", err=True)


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(worker)
