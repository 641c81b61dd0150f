"""Importing results: ``import PATH...``."""

from __future__ import annotations

from pathlib import Path

import click

from nano_export.cli.common import AppContext, fail, handle_errors, pass_app
from nano_export.db import has_schema, upgrade
from nano_export.errors import ImportFailed
from nano_export.importers import ImportReport, import_file


@click.command("import")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@pass_app
@handle_errors
def import_(app: AppContext, paths: tuple[Path, ...]) -> None:
    """Import nano-agent results from PATH... (idempotent: a file imported twice adds nothing).

    Reads evaluation-result markdown (.md), Claude Code post_tool_use.json hook logs (a JSON array;
    only prompt_nano_agent calls are kept) and JSONL of prompt_nano_agent responses (.jsonl).
    Each file is stored whole or not at all; at the first file that cannot be read the command
    stops with exit code 2, and the files before it stay imported.
    """
    engine = app.engine
    if not has_schema(engine):
        upgrade(engine)
    reports: list[ImportReport] = []
    for path in paths:
        try:
            reports.append(import_file(engine, path))
        except ImportFailed as exc:
            done = ", ".join(r.path for r in reports) or "none"
            rest = [str(p) for p in paths[len(reports) + 1 :]]
            note = f" (imported before it: {done}"
            note += f"; not read: {', '.join(rest)})" if rest else ")"
            fail(f"{exc}; nothing of this file was stored{note}", exc.exit_code)
        click.echo(reports[-1].describe())
    added = sum(r.added for r in reports)
    present = sum(r.present for r in reports)
    files = "file" if len(reports) == 1 else "files"
    click.echo(
        f"Total: {added} executions added ({present} already present) from {len(reports)} {files}"
    )


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(import_)
