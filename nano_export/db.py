"""Engines, connections and schema upgrades for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from nano_export import schema
from nano_export.errors import BadInput, InvalidSetting, QueryTimeout
from nano_export.regex import sqlite_regexp
from nano_export.settings import get_settings

if TYPE_CHECKING:  # Alembic is imported when migrating, not by every process that reads
    from alembic.config import Config

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A datetime from the database as aware UTC (SQLite returns naive values stored as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # Replaces the backtracking `regexp` SQLAlchemy installs: filters' `~` must run in linear time.
    dbapi_conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise InvalidSetting(f"NANO_EXPORT_DATABASE_URL: cannot parse {url!r}: {exc}") from None


def sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or a ``file:`` URI."""
    db = parsed.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _create_private(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only, unless it exists (left as it is).

    The database holds the raw, unmasked text; SQLite gives its -wal and -shm files the main
    file's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def make_engine(url: str) -> Engine:
    """A new engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    A SQLite file that does not exist yet is created here, with mode 0600.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            _create_private(path)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except Exception as exc:  # missing driver, bad options
        raise InvalidSetting(f"NANO_EXPORT_DATABASE_URL: {exc}") from None


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url`` (created once, shared by threads)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and forked workers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Upgrade the schema to the newest migration; safe to run again and from several processes."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        raise InvalidSetting(
            f"NANO_EXPORT_DATABASE_URL: cannot connect to {engine.url.render_as_string()}: "
            f"{exc.orig}"
        ) from None
    from alembic import command

    command.upgrade(alembic_config(engine), "head")
    log.info("schema upgraded", extra={"db": engine.url.render_as_string()})


def compile_bound(conn: Connection, stmt: ClauseElement) -> tuple[SQLCompiler, dict[str, Any]]:
    """``stmt`` compiled for ``conn``'s dialect, with its parameters converted as SQLAlchemy would.

    For handing a statement to the driver directly (SQLite's ``read_sql`` path, PostgreSQL's
    COPY): expanding ``IN`` lists are rendered, and each value passes its type's bind processor.
    """
    compiled = cast(
        SQLCompiler,
        stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True}),
    )
    values = dict(compiled.construct_params())
    for name, bind in compiled.binds.items():
        convert = bind.type.bind_processor(conn.dialect)
        if convert is not None and name in values:
            values[name] = convert(values[name])
    return compiled, values


def has_schema(engine: Engine) -> bool:
    """Whether the schema has been created in this database."""
    return inspect(engine).has_table("executions")


def require_database(url: str, *, pointer: str = "--db") -> Engine:
    """The engine of the nano-export database at ``url``; BadInput naming it where there is none.

    A SQLite file is looked for before any engine is made, so a wrong path never leaves an empty
    file (or folder) behind; any other database must exist, be reachable and have the schema.
    ``pointer`` names what the caller may point at the right database (``--db``, ``connect()``).
    """
    parsed = _parse(url)
    shown = parsed.render_as_string(hide_password=True)
    missing = BadInput(
        f"no nano-export database at {shown}; run `nano-export init` there first, or point "
        f"NANO_EXPORT_DATA_DIR, NANO_EXPORT_DATABASE_URL or {pointer} at the right one"
    )
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is None or not path.is_file():
            raise missing
    engine = get_engine(url)
    try:
        present = has_schema(engine)
    except OperationalError as exc:
        raise BadInput(f"cannot connect to {shown}: {str(exc.orig).strip()}") from None
    if not present:
        raise missing
    return engine


def execution_count(engine: Engine) -> int:
    """How many executions are stored."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.executions)).scalar_one())


#: SQLSTATE of a statement cancelled by ``statement_timeout`` (``query_canceled``).
_QUERY_CANCELED = "57014"


@contextmanager
def read_connection(engine: Engine, timeout_s: int | None = None) -> Iterator[Connection]:
    """A connection for an interactive read, each statement limited to ``timeout_s`` seconds.

    PostgreSQL only (``SET LOCAL statement_timeout``: it ends with the connection's transaction,
    so a pooled connection never carries it into an export); SQLite has no such setting, and its
    regex is linear-time. ``None`` takes ``NANO_EXPORT_QUERY_TIMEOUT_S``. A statement stopped by
    the limit raises QueryTimeout.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            yield conn
            return
        seconds = get_settings().query_timeout_s if timeout_s is None else int(timeout_s)
        conn.execute(text(f"SET LOCAL statement_timeout = {seconds * 1000}"))
        try:
            yield conn
        except Exception as exc:
            if _cancelled(exc):
                raise QueryTimeout(seconds) from None
            raise


def _cancelled(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from (pandas wraps them), is query_canceled."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError):
            orig = exc.orig
            code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            return code == _QUERY_CANCELED
        exc = exc.__cause__ or exc.__context__
    return False
