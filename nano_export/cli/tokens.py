"""API tokens: ``tokens create``, ``tokens list``, ``tokens revoke``."""

from __future__ import annotations

import getpass
import json

import click

from nano_export import auth
from nano_export import tokens as token_store
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.db import has_schema
from nano_export.errors import BadInput


def _require_schema(app: AppContext) -> None:
    if not has_schema(app.engine):
        raise BadInput("the database has no schema yet; run `nano-export init` first")


@click.group()
def tokens() -> None:
    """Manage API tokens for the HTTP API (only their hashes are stored)."""


@tokens.command("create")
@click.argument("name")
@pass_app
@handle_errors
def create(app: AppContext, name: str) -> None:
    """Create an API token acting for user NAME and print it alone on stdout, once."""
    _require_schema(app)
    username = name.strip().lower()
    if auth.role_of(app.settings.auth_file, username) is None:
        raise BadInput(
            f"no user {username!r} in {app.settings.auth_file}; "
            "add one with `nano-export users add`"
        )
    token = token_store.create_token(
        app.engine, name=username, actor=getpass.getuser(), interface="cli"
    )
    click.echo(token)
    click.echo(f"Token for {username} created; it is shown only this once.", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List API tokens: user, display prefix, status and dates (never the token)."""
    _require_schema(app)
    infos = token_store.list_tokens(app.engine)
    if as_json:
        click.echo(json.dumps([t.public() for t in infos], indent=2))
        return
    rows = [
        {
            "user": t.name,
            "prefix": t.prefix + "…",
            "status": "active" if t.active else "revoked",
            "created": t.created_at.strftime("%Y-%m-%d %H:%M"),
            "last used": t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "",
        }
        for t in infos
    ]
    echo_table(rows, ["user", "prefix", "status", "created", "last used"])


@tokens.command("revoke")
@click.argument("name")
@pass_app
@handle_errors
def revoke(app: AppContext, name: str) -> None:
    """Revoke every active API token of user NAME."""
    _require_schema(app)
    username = name.strip().lower()
    count = token_store.revoke_tokens(
        app.engine, name=username, actor=getpass.getuser(), interface="cli"
    )
    if count == 0:
        raise BadInput(f"user {username!r} has no active API token")
    click.echo(f"Revoked {count} token(s) of {username}")


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(tokens)
