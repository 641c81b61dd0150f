"""Dashboard users: ``users add``, ``users list``."""

from __future__ import annotations

import getpass
import sys

import click

from nano_export import audit, auth
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.db import has_schema
from nano_export.errors import BadInput
from nano_export.models import ROLES


@click.group()
def users() -> None:
    """Manage dashboard users (stored in NANO_EXPORT_AUTH_FILE with bcrypt hashes)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may export.")
@click.option("--email", metavar="E", default=None, help="Email address of the user.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from one line of stdin instead of prompting.",
)
@pass_app
@handle_errors
def add(app: AppContext, name: str, role: str, email: str | None, password_stdin: bool) -> None:
    """Add a dashboard user NAME with a role (the user name is lower-cased)."""
    engine = app.engine
    if not has_schema(engine):
        raise BadInput("the database has no schema yet; run `nano-export init` first")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, err=True, default=""
        )
    username = name.strip().lower()
    auth.add_user(
        app.settings.auth_file, username=username, role=role, password=password, email=email
    )
    with engine.begin() as conn:
        audit.record(
            conn,
            event="user.created",
            actor=username,
            interface="cli",
            details={"role": role, "by": getpass.getuser()},
        )
    click.echo(f"User {username} added with role {role} to {app.settings.auth_file}")


@users.command("list")
@pass_app
@handle_errors
def list_(app: AppContext) -> None:
    """List dashboard users with their roles."""
    rows = [
        {"user": u.username, "role": u.role, "name": u.name, "email": u.email or ""}
        for u in sorted(auth.load_users(app.settings.auth_file).values(), key=lambda u: u.username)
    ]
    echo_table(rows, ["user", "role", "name", "email"])


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(users)
