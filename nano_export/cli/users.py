"""Dashboard and API users: ``users add | list | remove | set-role | passwd | sessions revoke``."""

from __future__ import annotations

import getpass
import sys

import click

from nano_export import auth
from nano_export.cli.common import AppContext, echo_table, handle_errors, pass_app
from nano_export.models import ROLES


@click.group()
def users() -> None:
    """Manage dashboard and API users (stored in the database, passwords as bcrypt hashes)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(
        click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True, default="")
    )


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
    """Add a user NAME with a role (NFKC-normalised and lower-cased; one script, no spaces).

    The password needs NANO_EXPORT_PASSWORD_MIN_LENGTH characters (12 by default) and at most
    72 bytes (bcrypt's limit); surrounding spaces are stripped, as at login.
    """
    engine = app.database()
    password = _read_password(password_stdin)
    settings = app.settings
    user = auth.add_user(
        engine,
        username=name,
        role=role,
        password=password,
        email=email,
        min_length=settings.password_min_length,
        rounds=settings.bcrypt_rounds,
        actor=getpass.getuser(),
    )
    click.echo(f"User {user.username} added with role {user.role}")


@users.command("list")
@pass_app
@handle_errors
def list_(app: AppContext) -> None:
    """List users with their roles."""
    rows = [
        {"user": u.username, "role": u.role, "name": u.name, "email": u.email or ""}
        for u in auth.load_users(app.database()).values()
    ]
    echo_table(rows, ["user", "role", "name", "email"])


@users.command("remove")
@click.argument("name")
@pass_app
@handle_errors
def remove(app: AppContext, name: str) -> None:
    """Remove user NAME: their logins end and their API tokens stop working."""
    user = auth.remove_user(app.database(), username=name, actor=getpass.getuser())
    click.echo(f"User {user.username} removed")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@pass_app
@handle_errors
def set_role(app: AppContext, name: str, role: str) -> None:
    """Give user NAME another ROLE (from their next request on)."""
    user = auth.set_role(app.database(), username=name, role=role, actor=getpass.getuser())
    click.echo(f"User {user.username} now has role {user.role}")


@users.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, help="Read the new password from one line of stdin."
)
@pass_app
@handle_errors
def passwd(app: AppContext, name: str, password_stdin: bool) -> None:
    """Set a new password for user NAME; every login of theirs ends."""
    engine = app.database()
    settings = app.settings
    ended = auth.set_password(
        engine,
        username=name,
        password=_read_password(password_stdin or not sys.stdin.isatty()),
        actor=getpass.getuser(),
        min_length=settings.password_min_length,
        rounds=settings.bcrypt_rounds,
    )
    click.echo(f"Password of {name.strip().lower()} changed; {ended} login(s) ended")


@users.group("sessions")
def sessions_() -> None:
    """Logins (sessions) of a user."""


@sessions_.command("revoke")
@click.argument("name")
@pass_app
@handle_errors
def revoke_sessions(app: AppContext, name: str) -> None:
    """End every login of user NAME: their cookies stop working at once."""
    ended = auth.revoke_sessions(app.database(), username=name, actor=getpass.getuser())
    click.echo(f"Ended {ended} login(s) of {name.strip().lower()}")


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    group.add_command(users)
