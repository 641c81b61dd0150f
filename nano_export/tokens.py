"""API tokens: random secrets handed out once, stored only as SHA-256 hashes.

A token acts for the user named in its row (``api_tokens.name``); that user's role is read from the
credentials file at each request, so removing the user disables the token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import Engine, select, update

from nano_export import audit
from nano_export.db import as_utc, utcnow
from nano_export.errors import BadInput
from nano_export.schema import api_tokens

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "nxt_"
#: Characters of a token kept in clear for display (``nxt_`` plus 8).
DISPLAY_CHARS: Final = 12
#: ``last_used_at`` is written at most this often per token, to keep reads cheap.
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


class TokenInfo(BaseModel):
    """An API token as listed: never the token itself."""

    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the token is still accepted."""
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """The JSON form of ``tokens list --json``."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _normalise_name(name: str) -> str:
    key = name.strip().lower()
    if not key:
        raise BadInput("a user name is required for a token")
    return key


def create_token(
    engine: Engine, *, name: str, actor: str | None = None, interface: str = "cli"
) -> str:
    """Create a token acting for user ``name``; return it (the only time it exists in clear)."""
    key = _normalise_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[:DISPLAY_CHARS]
    with engine.begin() as conn:
        conn.execute(
            api_tokens.insert().values(
                name=key, token_hash=hash_token(token), prefix=prefix, created_at=utcnow()
            )
        )
        audit.record(
            conn,
            event="token.created",
            actor=actor or key,
            interface=interface,
            details={"token_user": key, "prefix": prefix},
        )
    log.info("api token created", extra={"token_user": key, "prefix": prefix})
    return token


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    t = api_tokens
    stmt = select(t.c.name, t.c.prefix, t.c.created_at, t.c.revoked_at, t.c.last_used_at)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.c.created_at, t.c.id)).mappings().all()
    return [
        TokenInfo(
            name=r["name"],
            prefix=r["prefix"],
            created_at=as_utc(r["created_at"]),
            revoked_at=as_utc(r["revoked_at"]),
            last_used_at=as_utc(r["last_used_at"]),
        )
        for r in rows
    ]


def revoke_tokens(
    engine: Engine, *, name: str, actor: str | None = None, interface: str = "cli"
) -> int:
    """Revoke every active token of user ``name``; return how many were revoked."""
    key = _normalise_name(name)
    t = api_tokens
    with engine.begin() as conn:
        prefixes = list(
            conn.execute(
                select(t.c.prefix).where(t.c.name == key, t.c.revoked_at.is_(None))
            ).scalars()
        )
        if not prefixes:
            return 0
        conn.execute(
            update(t).where(t.c.name == key, t.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        audit.record(
            conn,
            event="token.revoked",
            actor=actor or key,
            interface=interface,
            rows=len(prefixes),
            details={"token_user": key, "prefixes": prefixes},
        )
    log.info("api tokens revoked", extra={"token_user": key, "count": len(prefixes)})
    return len(prefixes)


def user_for_token(engine: Engine, token: str) -> str | None:
    """The user an active token acts for, or None; records when the token was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    t = api_tokens
    digest = hash_token(token)
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(t.c.id, t.c.name, t.c.revoked_at, t.c.last_used_at).where(
                    t.c.token_hash == digest
                )
            )
            .mappings()
            .first()
        )
    if row is None or row["revoked_at"] is not None:
        return None
    now = utcnow()
    last = as_utc(row["last_used_at"])
    if last is None or now - last >= LAST_USED_RESOLUTION:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == row["id"]).values(last_used_at=now))
    return str(row["name"])
