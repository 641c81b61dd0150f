"""The ``nano-export`` command line: thin commands over the package."""

from __future__ import annotations

import click

from nano_export.cli import (
    admin,
    exports,
    importing,
    schedules,
    seeding,
    tokens,
    users,
    views,
    workers,
)
from nano_export.cli.common import AppContext, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    "db",
    metavar="URL",
    envvar=None,
    help="SQLAlchemy database URL for this command (overrides NANO_EXPORT_DATABASE_URL).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.version_option(package_name="nano-export", message="nano-export %(version)s")
@click.pass_context
def main(ctx: click.Context, db: str | None, verbose: bool) -> None:
    """Export LLM agent evaluation data: import runs, filter them, write safe CSV files."""
    setup_logging(verbose)
    ctx.obj = AppContext(db_override=db)


for _module in (admin, importing, seeding, users, tokens, exports, schedules, views, workers):
    _module.register(main)
