"""Login throttling shared by every process: exponential back-off per user name and per address.

From the ``free``-th failure within ``WINDOW`` for one key (``user:NAME``, ``addr:IP``), each
failure blocks that key for ``base * 2**(failures - free)`` seconds, at most ``MAX_BLOCK``. While a
key is blocked no password is checked at all, the right one included: the caller refuses the
attempt and audits it as ``login.throttled``. A success clears the user name's count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from nano_export.db import as_utc, utcnow
from nano_export.schema import login_failures

WINDOW: Final = timedelta(minutes=15)
MAX_BLOCK: Final = timedelta(minutes=15)
MAX_KEY: Final = 300


def user_key(username: str) -> str:
    """The throttle key of a user name."""
    return f"user:{username.strip().lower()}"[:MAX_KEY]


def address_key(address: str | None, *, kind: str = "addr") -> str:
    """The throttle key of a client address (``-`` when unknown)."""
    return f"{kind}:{address or '-'}"[:MAX_KEY]


def wait_seconds(engine: Engine, keys: Iterable[str], *, now: datetime | None = None) -> float:
    """Seconds until every key may try again (0 when none is blocked)."""
    now = now or utcnow()
    t = login_failures
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.blocked_until).where(t.c.key.in_(list(keys)))).scalars()
        until = [as_utc(v) for v in rows if v is not None]
    waits = [(u - now).total_seconds() for u in until if u is not None]
    return max([0.0, *waits])


def record_failure(
    engine: Engine,
    keys: Iterable[str],
    *,
    free: int,
    base_s: float,
    now: datetime | None = None,
) -> None:
    """Count one failed attempt against each key, blocking those past ``free`` failures."""
    now = now or utcnow()
    t = login_failures
    for key in keys:
        for _attempt in range(3):  # two processes may insert the same key at once
            try:
                with engine.begin() as conn:
                    row = (
                        conn.execute(
                            select(t.c.failures, t.c.last_failure_at).where(t.c.key == key)
                        )
                        .mappings()
                        .first()
                    )
                    last = as_utc(row["last_failure_at"]) if row else None
                    count = 1
                    if row is not None and last is not None and now - last <= WINDOW:
                        count = int(row["failures"]) + 1
                    blocked = None
                    if count >= free:
                        seconds = base_s * 2 ** min(count - free, 30)
                        blocked = now + min(timedelta(seconds=seconds), MAX_BLOCK)
                    values = {"failures": count, "last_failure_at": now, "blocked_until": blocked}
                    if row is None:
                        conn.execute(t.insert().values(key=key, **values))
                    else:
                        conn.execute(update(t).where(t.c.key == key).values(**values))
                break
            except IntegrityError:
                continue


def clear(engine: Engine, keys: Iterable[str]) -> None:
    """Forget the failures of ``keys`` (after a successful login)."""
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.key.in_(list(keys))))
