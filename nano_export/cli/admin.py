"""Setting up: ``init``, ``config``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from nano_export.bootstrap import initialize
from nano_export.cli.common import AppContext, handle_errors, pass_app
from nano_export.settings import describe


@click.command()
@pass_app
@handle_errors
def init(app: AppContext) -> None:
    """Create or upgrade the schema, the signing secret and users of an older users file.

    Safe to run again: the secret is generated once (unless NANO_EXPORT_SECRET_KEY is set) and
    an older YAML users file (NANO_EXPORT_AUTH_FILE) is imported only the first time.
    """
    report = initialize(app.settings)
    click.echo(f"Database ready: {report.database}")
    if report.imported_users:
        names = ", ".join(report.imported_users)
        click.echo(f"Users imported from {app.settings.auth_file}: {names}")
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


@click.command()
@click.option(
    "--rows",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Executions to seed when the database is empty.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the demo data generator.")
@pass_app
@handle_errors
def demo(app: AppContext, /, rows: int, seed: int) -> None:
    """Prepare a demo: schema, demo data and an admin login when empty (used by `make run`)."""
    from nano_export.demo import prepare_demo

    click.echo(f"Database: {app.settings.db_url}")
    with _progress(rows) as tick:
        report = prepare_demo(app.settings, rows=rows, seed=seed, progress=tick)
    if report.seeded_rows:
        click.echo(f"Seeded {report.seeded_rows} demo executions.")
    else:
        click.echo(f"The database already holds {report.existing_rows} executions; not seeded.")
    if report.user and report.password:
        click.echo(f"Demo login: user {report.user!r}, password {report.password!r}")
        click.echo(f"  (kept in {report.login_file}; add people with `nano-export users add`)")
    else:
        click.echo("Logins: the users in the database (`nano-export users list`)")


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    if not sys.stderr.isatty():
        yield lambda _n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc="seeding", unit=" runs", file=sys.stderr) as bar:

        def tick(done: int) -> None:
            bar.update(done)

        yield tick


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(init)
    group.add_command(config)
    group.add_command(demo)
