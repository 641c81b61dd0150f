"""Values every process of one installation shares through the database: the signing secret.

The signing secret keys the login cookies and the identifier hashes of exports. When
``NANO_EXPORT_SECRET_KEY`` is set it wins; otherwise ``nano-export init`` generates one into the
``instance_values`` table (or moves an older ``data/secret.key`` file's value there, so hashes
made before stay the same), and every dashboard, worker and CLI on that database reads it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from nano_export.db import get_engine, utcnow
from nano_export.errors import InvalidSetting
from nano_export.schema import instance_values

log = logging.getLogger(__name__)

SECRET_KEY: Final = "secret_key"
_cache: dict[str, str] = {}
_lock = threading.Lock()


def get_value(conn: Connection, key: str) -> str | None:
    """The stored value of ``key``, or None."""
    stmt = select(instance_values.c.value).where(instance_values.c.key == key)
    value = conn.execute(stmt).scalar_one_or_none()
    return None if value is None else str(value)


def put_if_absent(engine: Engine, key: str, value: str) -> str:
    """Store ``value`` under ``key`` unless one is there; return the value in force."""
    try:
        with engine.begin() as conn:
            existing = get_value(conn, key)
            if existing is not None:
                return existing
            conn.execute(instance_values.insert().values(key=key, value=value, created_at=utcnow()))
            return value
    except IntegrityError:  # another process stored it first: theirs wins
        with engine.connect() as conn:
            stored = get_value(conn, key)
        assert stored is not None
        return stored


def ensure_secret(engine: Engine, *, legacy_file: Path | None = None) -> str:
    """The stored signing secret, created once: the legacy file's value, or a new random one."""
    with engine.connect() as conn:
        stored = get_value(conn, SECRET_KEY)
    if stored is not None:
        return stored
    value = ""
    if legacy_file is not None and legacy_file.is_file():
        value = legacy_file.read_text(encoding="utf-8").strip()
        if value:
            log.info("signing secret moved into the database", extra={"from": str(legacy_file)})
    return put_if_absent(engine, SECRET_KEY, value or secrets.token_hex(32))


def database_secret(db_url: str, *, legacy_file: Path | None = None) -> str:
    """The signing secret of the database at ``db_url`` (read once per process)."""
    with _lock:
        cached = _cache.get(db_url)
    if cached is not None:
        return cached
    try:
        value = ensure_secret(get_engine(db_url), legacy_file=legacy_file)
    except (OperationalError, ProgrammingError):
        raise InvalidSetting(
            "no signing secret: run `nano-export init` on the database, "
            "or set NANO_EXPORT_SECRET_KEY"
        ) from None
    with _lock:
        _cache[db_url] = value
    return value


def forget() -> None:
    """Drop the per-process cache (tests that empty a database)."""
    with _lock:
        _cache.clear()
