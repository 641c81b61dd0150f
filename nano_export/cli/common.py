"""What every command shares: the context object, error handling and output helpers."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy import Engine

from nano_export import logs
from nano_export.db import get_engine, require_database
from nano_export.errors import InvalidSetting, NanoExportError
from nano_export.settings import Settings, get_settings

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class AppContext:
    """Settings and a lazily created engine for one command."""

    db_override: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Settings from the environment, with ``--db`` applied."""
        if self._settings is None:
            overrides = {"database_url": self.db_override} if self.db_override else {}
            self._settings = get_settings(**overrides)
        return self._settings

    @property
    def engine(self) -> Engine:
        """The engine of the configured database."""
        return get_engine(self.settings.db_url)

    def database(self) -> Engine:
        """The engine of a database that has the schema; BadInput naming it otherwise.

        Checked before connecting, so a command run in the wrong folder never leaves an empty
        SQLite file behind.
        """
        return require_database(self.settings.db_url, pointer="--db")


pass_app = click.make_pass_decorator(AppContext)


def fail(message: str, code: int) -> None:
    """Print an error to stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into a one-line message and the SPEC's exit code; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except NanoExportError as exc:
            fail(str(exc), exc.exit_code)
            raise  # unreachable: fail exits

    return wrapper


def setup_logging(verbose: bool) -> None:
    """Logs to stderr in NANO_EXPORT_LOG_FORMAT (key=value or JSON); quiet unless --verbose."""
    try:
        log_format = get_settings().log_format
    except InvalidSetting:  # the command itself reports the bad setting
        log_format = "text"
    logs.configure(log_format, level=logging.INFO if verbose else logging.WARNING, everything=True)


def echo_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as an aligned plain-text table."""
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") or "")) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "") or "").ljust(widths[c]) for c in columns).rstrip())
