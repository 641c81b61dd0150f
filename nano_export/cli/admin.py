"""Setting up: ``init``, ``config``."""

from __future__ import annotations

import click

from nano_export.bootstrap import initialize
from nano_export.cli.common import AppContext, handle_errors, pass_app
from nano_export.settings import describe


@click.command()
@pass_app
@handle_errors
def init(app: AppContext) -> None:
    """Create or upgrade the database schema and the secret key (safe to run again)."""
    report = initialize(app.settings)
    click.echo(f"Database ready: {report.database}")
    if report.pricing_rows:
        click.echo(f"Pricing table: {report.pricing_rows} model prices stored")


@click.command()
@pass_app
@handle_errors
def config(app: AppContext) -> None:
    """Print every setting with its value (secrets masked) and what it does."""
    for env, value, help_ in describe(app.settings):
        click.echo(f"{env}={value}")
        click.echo(f"    {help_}")


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(init)
    group.add_command(config)
