"""Demo data: ``seed``."""

from __future__ import annotations

import click
from tqdm import tqdm

from nano_export.cli.common import AppContext, handle_errors, pass_app
from nano_export.db import upgrade
from nano_export.pricing import sync_pricing
from nano_export.seed import seed_database


@click.command()
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="Executions the database should hold for this seed (at least 1).",
)
@click.option(
    "--seed",
    "seed_",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="S",
    help="Seed of the demo stream: the same seed gives the same rows.",
)
@pass_app
@handle_errors
def seed(app: AppContext, rows: int, seed_: int) -> None:
    """Fill the database with realistic demo runs across every provider and model.

    Runs cover the 90 days before today (UTC) and include eval runs with grades and ranks, ad-hoc
    runs, failures, tool-call interactions and a small share of planted secrets, emails and home
    paths. Rows already seeded with the same --seed are kept, so running again adds only what is
    missing: `seed --rows 1000` twice leaves 1,000 rows; `--rows 2000` afterwards adds 1,000.
    """
    engine = app.engine
    upgrade(engine)
    with engine.begin() as conn:
        sync_pricing(conn)
    with tqdm(total=rows, unit="rows", unit_scale=True, desc="seed", disable=None) as bar:

        def advance(done: int) -> None:
            bar.update(done)

        report = seed_database(engine, rows=rows, seed=seed_, progress=advance)
    click.echo(
        f"Seeded {report.rows_written:,} executions ({report.rows_skipped:,} already present), "
        f"{report.eval_runs:,} eval runs, {report.interactions:,} interactions "
        f"in {report.seconds:.1f} s (seed {report.seed})"
    )


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(seed)
