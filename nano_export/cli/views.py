"""Saved views: ``views list | save NAME [filters…] [--shared] | show NAME | delete NAME``."""

from __future__ import annotations

import json

import click

from nano_export import filters
from nano_export import views as store
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.cli.exports import DATASET_CHOICE, user_role
from nano_export.errors import BadInput
from nano_export.models import FilterSpec

USER = click.option("--user", required=True, metavar="NAME", help="Act as this dashboard user.")


@click.group("views")
def views_group() -> None:
    """Saved views: a named dataset, filters and columns, private or shared with the team."""


@views_group.command("list")
@USER
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of views.")
@pass_app
@handle_errors
def list_(app: AppContext, user: str, as_json: bool) -> None:
    """The user's own views and the views teammates share."""
    user_role(app, user)
    found = store.list_views(app.database(), user=user.lower())
    if as_json:
        click.echo(json.dumps([v.public() for v in found], indent=2))
        return
    rows = [
        {
            "name": v.name if v.owner == user.lower() else v.ref,
            "dataset": v.dataset,
            "shared": "yes" if v.shared else "no",
            "filters": filters.describe(v.filters),
        }
        for v in found
    ]
    echo_table(rows, ["name", "dataset", "shared", "filters"])


@views_group.command("save")
@click.argument("name")
@USER
@click.option(
    "--dataset",
    type=DATASET_CHOICE,
    default="evaluation-results",
    show_default=True,
    help="Dataset of the view.",
)
@click.option("--provider", multiple=True, metavar="P", help="Only this provider (repeat).")
@click.option("--model", multiple=True, metavar="M", help="Only this model id (repeat).")
@click.option("--test", multiple=True, metavar="T", help="Only this test id or name (repeat).")
@click.option("--since", metavar="DATE", help="Runs started on or after DATE (UTC).")
@click.option("--until", metavar="DATE", help="Runs started on or before DATE (UTC).")
@click.option("--success", is_flag=True, help="Only successful runs (not with --failed).")
@click.option("--failed", is_flag=True, help="Only failed runs (not with --success).")
@click.option("--where", metavar="EXPR", help="Expression on any column of the dataset.")
@click.option("--columns", metavar="a,b,c", help="Columns of the view, in this order.")
@click.option("--shared", is_flag=True, help="Let teammates see and open it (as OWNER/NAME).")
@pass_app
@handle_errors
def save(
    app: AppContext,
    name: str,
    user: str,
    dataset: str,
    provider: tuple[str, ...],
    model: tuple[str, ...],
    test: tuple[str, ...],
    since: str | None,
    until: str | None,
    success: bool,
    failed: bool,
    where: str | None,
    columns: str | None,
    shared: bool,
) -> None:
    """Save (or replace) the user's view NAME."""
    user_role(app, user)
    if success and failed:
        raise BadInput("--success and --failed cannot be used together")
    spec = FilterSpec(
        provider=provider,
        model=model,
        test=test,
        since=filters.parse_time("--since", since) if since else None,
        until=filters.parse_time("--until", until) if until else None,
        success=True if success else False if failed else None,
        where=where,
    )
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    view = store.save_view(
        app.database(),
        name=name,
        owner=user.lower(),
        dataset=dataset,
        spec=spec,
        columns=cols,
        shared=shared,
    )
    click.echo(f"saved view {view.ref} ({'shared' if view.shared else 'private'})")


@views_group.command("show")
@click.argument("name")
@USER
@pass_app
@handle_errors
def show(app: AppContext, name: str, user: str) -> None:
    """Print one view (NAME, or OWNER/NAME for a teammate's) as JSON."""
    role = user_role(app, user)
    view = store.get_view(app.database(), name=name, user=user.lower(), role=role)
    click.echo(json.dumps(view.public(), indent=2))


@views_group.command("delete")
@click.argument("name")
@USER
@pass_app
@handle_errors
def delete(app: AppContext, name: str, user: str) -> None:
    """Delete one of the user's views (admins: anyone's, as OWNER/NAME)."""
    role = user_role(app, user)
    view = store.delete_view(app.database(), name=name, user=user.lower(), role=role)
    click.echo(f"deleted view {view.ref}")


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(views_group)
