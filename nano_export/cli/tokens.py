"""API tokens: ``tokens create``, ``tokens list``, ``tokens revoke``."""

from __future__ import annotations

import getpass
import json

import click

from nano_export import tokens as token_store
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.errors import BadInput


@click.group()
def tokens() -> None:
    """Manage API tokens for the HTTP API (only their hashes are stored)."""


@tokens.command("create")
@click.argument("name")
@click.option("--name", "label", metavar="LABEL", default=None, help="A name for the token.")
@click.option(
    "--expires",
    metavar="DAYS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Days until the token stops working (default: never).",
)
@pass_app
@handle_errors
def create(app: AppContext, name: str, label: str | None, expires: float | None) -> None:
    """Create an API token acting for user NAME and print it alone on stdout, once."""
    token = token_store.create_token(
        app.database(),
        name=name,
        label=label,
        expires_days=expires,
        actor=getpass.getuser(),
        interface="cli",
    )
    click.echo(token)
    click.echo(f"Token for {name.strip().lower()} created; it is shown only this once.", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List API tokens: id, user, name, prefix, status and dates (never the token)."""
    infos = token_store.list_tokens(app.database())
    if as_json:
        click.echo(json.dumps([t.public() for t in infos], indent=2))
        return
    fmt = "%Y-%m-%d %H:%M"
    rows = [
        {
            "id": str(t.id),
            "user": t.name,
            "name": t.label or "",
            "prefix": t.prefix + "…",
            "status": t.status,
            "created": t.created_at.strftime(fmt),
            "expires": t.expires_at.strftime(fmt) if t.expires_at else "never",
            "last used": t.last_used_at.strftime(fmt) if t.last_used_at else "",
        }
        for t in infos
    ]
    echo_table(rows, ["id", "user", "name", "prefix", "status", "created", "expires", "last used"])


@tokens.command("revoke")
@click.argument("name", required=False)
@click.option("--id", "token_id", type=int, default=None, help="Revoke only the token ID.")
@pass_app
@handle_errors
def revoke(app: AppContext, name: str | None, token_id: int | None) -> None:
    """Revoke every active API token of user NAME, or one token with --id ID."""
    if (name is None) == (token_id is None):
        raise BadInput("give a user NAME (all of their tokens) or --id ID (one token)")
    count = token_store.revoke_tokens(
        app.database(), name=name, token_id=token_id, actor=getpass.getuser(), interface="cli"
    )
    if count == 0:
        what = f"token {token_id}" if token_id is not None else f"user {name!r}"
        raise BadInput(f"{what} has no active API token")
    click.echo(f"Revoked {count} token(s)")


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(tokens)
