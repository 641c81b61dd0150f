"""Exporting: ``export``, ``exports list|cancel|prune`` and ``audit``."""

from __future__ import annotations

import difflib
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine

from nano_export import audit as audit_log
from nano_export import filters, jobs
from nano_export.auth import role_of
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.datasets import DATASETS, dictionary_text
from nano_export.db import utcnow
from nano_export.errors import BadInput, ExportFailed, PermissionDenied
from nano_export.exporter import count_rows, estimate_bytes, plan_export
from nano_export.formats import FORMAT_NAMES, sheets_for
from nano_export.models import ExportRecord, ExportRequest, FilterSpec, Role

DATASET_CHOICE = click.Choice(sorted(DATASETS))


def _parse_day(value: str | None, option: str) -> date | datetime | None:
    return None if value is None else filters.parse_time(option, value)


def _parse_renames(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise BadInput(f"--rename {pair!r}: expected OLD=NEW")
        out[old.strip()] = new.strip()
    return out


def filter_options(fn: Any) -> Any:
    """The filter and output options shared by ``export`` and ``schedules add``."""
    options = [
        click.option("--provider", multiple=True, metavar="P", help="Only this provider (repeat)."),
        click.option("--model", multiple=True, metavar="M", help="Only this model id (repeat)."),
        click.option(
            "--test", multiple=True, metavar="T", help="Only this test id or name (repeat)."
        ),
        click.option("--since", metavar="DATE", help="Runs started on or after DATE (UTC)."),
        click.option("--until", metavar="DATE", help="Runs started on or before DATE (UTC)."),
        click.option("--success", is_flag=True, help="Only successful runs (not with --failed)."),
        click.option("--failed", is_flag=True, help="Only failed runs (not with --success)."),
        click.option(
            "--where",
            metavar="EXPR",
            help="Expression on any column, e.g. \"provider = 'openai' and cost_usd > 0.01\".",
        ),
        click.option("--columns", metavar="a,b,c", help="Columns to write, in this order."),
        click.option(
            "--rename", multiple=True, metavar="OLD=NEW", help="Rename a column (repeat)."
        ),
        click.option(
            "--privacy",
            type=click.Choice(["public", "standard", "full"]),
            default=None,
            help="Privacy level of the file: public, standard or full (limited by the user's "
            "role). Default: standard, or public for viewers.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMAT_NAMES),
            default=None,
            help="File format, also the file extension: csv (default), csv.gz, xlsx (a new "
            "sheet every 1,048,575 rows), parquet, jsonl or jsonl.gz.",
        ),
        click.option(
            "--gzip",
            "use_gzip",
            is_flag=True,
            help="Gzip the file: the same as --format csv.gz (or jsonl.gz with --format jsonl).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_request(
    dataset: str,
    *,
    provider: tuple[str, ...],
    model: tuple[str, ...],
    test: tuple[str, ...],
    since: str | None,
    until: str | None,
    success: bool,
    failed: bool,
    where: str | None,
    columns: str | None,
    rename: tuple[str, ...],
    privacy: str | None,
    use_gzip: bool,
    fmt: str | None = None,
    excel: bool = False,
) -> ExportRequest:
    """An ExportRequest from the shared command-line options (privacy defaults to standard).

    BadInput when both ``--success`` and ``--failed`` are given: neither means every run; and
    for ``--gzip`` or ``--excel`` with a format they do not apply to.
    """
    if success and failed:
        raise BadInput(
            "--success and --failed cannot be used together: give one of them, "
            "or neither for every run"
        )
    spec = FilterSpec(
        provider=provider,
        model=model,
        test=test,
        since=_parse_day(since, "--since"),
        until=_parse_day(until, "--until"),
        success=True if success else False if failed else None,
        where=where,
    )
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return ExportRequest.model_validate(
        {
            "dataset": dataset,
            "filters": spec,
            "columns": cols,
            "rename": _parse_renames(rename),
            "privacy": privacy or "standard",
            "format": _format(fmt, use_gzip=use_gzip, excel=excel),
            "excel": excel,
        }
    )


def _format(fmt: str | None, *, use_gzip: bool, excel: bool) -> str:
    """The format of ``--format`` with the ``--gzip`` shorthand applied."""
    name = fmt or "csv"
    if use_gzip:
        if name not in ("csv", "csv.gz", "jsonl", "jsonl.gz"):
            raise BadInput(
                f"--gzip applies to csv and jsonl; --format {name} is compressed already"
            )
        name = name if name.endswith(".gz") else f"{name}.gz"
    if excel and name not in ("csv", "csv.gz"):
        raise BadInput(
            f"--excel adds a byte-order mark to CSV and does not apply to --format {name}; "
            "for an Excel workbook use --format xlsx"
        )
    return name


def _extension(name: str) -> str | None:
    """The export format a file name's extension names (the longest match), if any."""
    matches = [f for f in FORMAT_NAMES if name.endswith(f".{f}")]
    if name.endswith(".gz") and not matches:
        return "gz"
    return max(matches, key=len) if matches else None


def user_role(app: AppContext, user: str) -> Role:
    """The role of a user from the users table; PermissionDenied when unknown."""
    role = role_of(app.database(), user.lower())
    if role is None:
        raise PermissionDenied(
            f"unknown user {user!r} in the database; add it with "
            "`nano-export users add NAME --role viewer|analyst|admin`, or point "
            "NANO_EXPORT_DATA_DIR (or NANO_EXPORT_DATABASE_URL) at the installation's database"
        )
    return role


def _out_path(out: Path | None, dataset: str, request: ExportRequest, several: bool) -> Path:
    default_name = f"{dataset}-{utcnow():%Y%m%d-%H%M%S}.{request.format}"
    if out is None:
        return Path.cwd() / default_name
    if several or out.is_dir():
        if (out.exists() and not out.is_dir()) or (
            several and not out.exists() and _extension(out.name)
        ):
            raise BadInput(f"--out: several datasets need a folder, not the file name {out}")
        out.mkdir(parents=True, exist_ok=True)
        return out / default_name
    if not out.parent.is_dir():
        raise BadInput(f"--out: folder {out.parent} does not exist")
    named = _extension(out.name)
    if named is not None and named != request.format:
        fmt = request.format
        if fmt.endswith(".gz") and not out.name.endswith(".gz"):
            raise BadInput(f"--out {out}: --gzip writes gzip data; name the file {out.name}.gz")
        if named.endswith("gz") and not fmt.endswith(".gz"):
            raise BadInput(
                f"--out {out}: a .gz name needs --gzip (the file would be {fmt}, uncompressed)"
            )
        raise BadInput(
            f"--out {out}: the file would be {fmt}; name it with the extension .{fmt} "
            f"(or choose --format {named})"
        )
    if named is None and request.format.endswith(".gz"):
        raise BadInput(f"--out {out}: --gzip writes gzip data; name the file {out.name}.gz")
    return out


class _Bar:
    """A tqdm bar on a terminal; nothing when stderr is not one."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._enabled = sys.stderr.isatty()

    def __call__(self, rows: int, total: int | None) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self._label, unit=" rows", file=sys.stderr)
        self._bar.update(rows - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@click.command(epilog=dictionary_text())
@click.argument("datasets", nargs=-1, required=True, type=DATASET_CHOICE)
@click.option("--user", required=True, metavar="NAME", help="Export as this dashboard user.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="File to write (a folder when several datasets are given). Default: ./DATASET-TIME.FORMAT",
)
@filter_options
@click.option(
    "--excel",
    is_flag=True,
    help="Start a CSV file with a UTF-8 BOM for Excel (for a workbook: --format xlsx).",
)
@click.option("--dry-run", is_flag=True, help="Print the matching row count and size only.")
@pass_app
@handle_errors
def export(
    app: AppContext,
    /,
    datasets: tuple[str, ...],
    user: str,
    out: Path | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Export DATASET(S) to files: one each, exactly the selected rows, secrets masked.

    \b
    Datasets: evaluation-results, performance-metrics, agent-interactions.
    Exit codes: 0 done, 1 export failed, 2 bad input, 3 permission refused,
    4 concurrent-export limit reached.
    """
    role = user_role(app, user)
    if options["privacy"] is None:  # the most a role may take, up to the default 'standard'
        options["privacy"] = "public" if role == "viewer" else "standard"
    requests = [build_request(d, **options) for d in datasets]
    engine = app.database()
    _hint_unknown_values(engine, requests[0].filters)
    if dry_run:
        for request in requests:
            plan = plan_export(request)
            jobs.check_privacy(
                engine, user=user.lower(), role=role, request=request, interface="cli"
            )
            with engine.connect() as conn:
                rows = count_rows(conn, plan)
            size = estimate_bytes(engine, plan, secret=app.settings.resolved_secret(), rows=rows)
            line = f"{request.dataset}: {rows} rows, about {_human(size)}"
            if request.format != "csv":
                line += " as uncompressed CSV"
            if request.format == "xlsx":
                sheets = sheets_for(rows, app.settings.xlsx_sheet_rows)
                line += f", {sheets} {'sheet' if sheets == 1 else 'sheets'} of xlsx"
            click.echo(line)
        return
    several = len(requests) > 1
    paths = [_out_path(out, r.dataset, r, several=several) for r in requests]  # all checked first
    unfinished = 0
    for request, path in zip(requests, paths, strict=True):
        bar = _Bar(request.dataset)
        try:
            rec = jobs.submit_export(
                engine,
                app.settings,
                user=user.lower(),
                role=role,
                request=request,
                interface="cli",
                wait=True,
                out_path=path,
                on_progress=bar,
            )
        finally:
            bar.close()
        if rec.status == "succeeded":
            click.echo(f"{rec.file_path}: {rec.rows_done} rows ({_human(rec.bytes or 0)})")
            if rec.note:
                click.echo(f"Note: {rec.note}", err=True)
            continue
        unfinished += 1
        what = "was cancelled" if rec.status == "cancelled" else f"{rec.status}: {rec.error}"
        click.echo(f"Error: export of {request.dataset} {what}", err=True)
    if unfinished:
        raise ExportFailed(
            f"{unfinished} of {len(requests)} export(s) did not finish; no partial file was left"
        )


def _hint_unknown_values(engine: Engine, spec: FilterSpec) -> None:
    """Warn on stderr about a provider or model that no run has: a typo would give 0 rows.

    Looked up by SQL on the indexed column, not in Explore's columns: loading those would cost an
    export process 1.8 s and 58 MB at 1M rows for a list of names."""
    fields: tuple[tuple[filters.ValueField, tuple[str, ...]], ...] = (
        ("provider", spec.provider),
        ("model", spec.model),
    )
    for field, values in fields:
        if not values:
            continue
        found = set(filters.stored_values(engine, field=field, among=values))
        missing = [value for value in values if value not in found]
        known = filters.stored_values(engine, field=field) if missing else []
        for value in missing:
            close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known[:12])}"
            click.echo(f"Warning: no run has {field} {value!r} ({hint})", err=True)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


@click.group()
def exports() -> None:
    """List, cancel and prune exports."""


@exports.command("list")
@click.option("--user", metavar="NAME", help="Only this user's exports.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of export records.")
@pass_app
@handle_errors
def list_(app: AppContext, user: str | None, as_json: bool) -> None:
    """List exports, newest first."""
    records = jobs.list_exports(
        app.database(), user=user.lower() if user else None, settings=app.settings
    )
    if as_json:
        click.echo(json.dumps([r.public() for r in records], indent=2))
        return
    echo_table(
        [_row(r) for r in records], ["id", "owner", "dataset", "status", "rows", "format", "size"]
    )


def _row(rec: ExportRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "owner": rec.owner,
        "dataset": rec.dataset,
        "status": rec.status,
        "rows": rec.rows_done,
        "format": rec.format,
        "size": _human(rec.bytes) if rec.bytes is not None else "",
    }


@exports.command()
@click.argument("export_id", metavar="ID")
@pass_app
@handle_errors
def cancel(app: AppContext, export_id: str) -> None:
    """Stop a running export; its temporary file is removed."""
    rec = jobs.cancel_export(app.database(), export_id=export_id, user="cli", role="admin")
    click.echo(f"{rec.id}: cancel requested ({rec.rows_done} rows written so far)")


@exports.command()
@pass_app
@handle_errors
def prune(app: AppContext) -> None:
    """Delete export files older than NANO_EXPORT_EXPORT_RETENTION_DAYS and mark them expired."""
    engine = app.database()
    reaped = jobs.reap_stale(engine, app.settings)
    pruned = jobs.prune_exports(engine, app.settings)
    click.echo(f"{pruned} export(s) expired, {reaped} stalled export(s) marked failed")


@click.command()
@click.option("--since", metavar="DATE", help="Only events on or after DATE (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of events.")
@pass_app
@handle_errors
def audit(app: AppContext, since: str | None, as_json: bool) -> None:
    """Show the audit log: who exported what, logins, denials."""
    start = _parse_day(since, "--since")
    with app.database().connect() as conn:
        events = audit_log.list_events(conn, since=filters.start_of(start) if start else None)
    if as_json:
        click.echo(json.dumps([e.public() for e in events], indent=2, default=str))
        return
    echo_table(
        [
            {
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "event": e.event,
                "actor": e.actor,
                "export": e.export_id or "",
                "rows": e.rows if e.rows is not None else "",
                "reason": e.reason or "",
            }
            for e in events
        ],
        ["at", "event", "actor", "export", "rows", "reason"],
    )


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(export)
    group.add_command(exports)
    group.add_command(audit)
