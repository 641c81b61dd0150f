"""API tokens: random secrets handed out once, stored only as SHA-256 hashes.

A token belongs to a user record (``api_tokens.user_id``), not to a name: removing the user, or
removing and adding the same name again, leaves it dead. The role is read from the users table at
each request. A token may have a label and an expiry, and can be revoked alone (by its id) or with
all of its user's tokens.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import Engine, select, update

from nano_export import audit, auth
from nano_export.db import as_utc, utcnow
from nano_export.errors import BadInput
from nano_export.models import Role
from nano_export.schema import api_tokens, users

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "nxt_"
#: Characters of a token kept in clear for display (``nxt_`` plus 8).
DISPLAY_CHARS: Final = 12
#: ``last_used_at`` is written at most this often per token, to keep reads cheap.
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)
MAX_EXPIRY_DAYS: Final = 3650


class TokenInfo(BaseModel):
    """An API token as listed: never the token itself."""

    id: int
    name: str
    label: str | None = None
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def expired(self) -> bool:
        """Whether the token is past its expiry."""
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def active(self) -> bool:
        """Whether the token is still accepted (its user may have been removed, though)."""
        return self.revoked_at is None and not self.expired

    @property
    def status(self) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"

    def public(self) -> dict[str, Any]:
        """The JSON form of ``tokens list --json``."""
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "prefix": self.prefix,
            "active": self.active,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True)
class TokenUser:
    """The user an accepted token acts for."""

    user_id: str
    username: str
    role: Role


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    engine: Engine,
    *,
    name: str,
    label: str | None = None,
    expires_days: float | None = None,
    actor: str | None = None,
    interface: str = "cli",
) -> str:
    """Create a token acting for user ``name``; return it (the only time it exists in clear)."""
    user = auth.get_user(engine, name)
    if user is None:
        raise BadInput(f"no user {name.strip().lower()!r}; add one with `nano-export users add`")
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
        raise BadInput(f"--expires must be between 1 and {MAX_EXPIRY_DAYS} days")
    label = (label or "").strip() or None
    if label is not None and len(label) > 128:
        raise BadInput("a token name has at most 128 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[:DISPLAY_CHARS]
    now = utcnow()
    expires_at = now + timedelta(days=expires_days) if expires_days is not None else None
    with engine.begin() as conn:
        conn.execute(
            api_tokens.insert().values(
                name=user.username,
                user_id=user.id,
                label=label,
                token_hash=hash_token(token),
                prefix=prefix,
                created_at=now,
                expires_at=expires_at,
            )
        )
        audit.record(
            conn,
            event="token.created",
            actor=actor or user.username,
            interface=interface,
            details={
                "token_user": user.username,
                "prefix": prefix,
                "label": label,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    log.info("api token created", extra={"token_user": user.username, "prefix": prefix})
    return token


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every token, revoked and expired ones included, oldest first."""
    t = api_tokens
    stmt = select(
        t.c.id,
        t.c.name,
        t.c.label,
        t.c.prefix,
        t.c.created_at,
        t.c.expires_at,
        t.c.revoked_at,
        t.c.last_used_at,
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.c.created_at, t.c.id)).mappings().all()
    return [
        TokenInfo(
            id=int(r["id"]),
            name=r["name"],
            label=r["label"],
            prefix=r["prefix"],
            created_at=as_utc(r["created_at"]),
            expires_at=as_utc(r["expires_at"]),
            revoked_at=as_utc(r["revoked_at"]),
            last_used_at=as_utc(r["last_used_at"]),
        )
        for r in rows
    ]


def revoke_tokens(
    engine: Engine,
    *,
    name: str | None = None,
    token_id: int | None = None,
    actor: str | None = None,
    interface: str = "cli",
) -> int:
    """Revoke every active token of user ``name``, or the one token ``token_id``; how many."""
    if (name is None) == (token_id is None):
        raise BadInput("name a user, or one token with --id")
    t = api_tokens
    if token_id is not None:
        where = [t.c.id == token_id, t.c.revoked_at.is_(None)]
        who = f"token {token_id}"
    else:
        assert name is not None
        key = name.strip().lower()
        if not key:
            raise BadInput("a user name is required for a token")
        where = [t.c.name == key, t.c.revoked_at.is_(None)]
        who = key
    with engine.begin() as conn:
        found = conn.execute(select(t.c.prefix, t.c.name).where(*where)).all()
        if not found:
            return 0
        conn.execute(update(t).where(*where).values(revoked_at=utcnow()))
        audit.record(
            conn,
            event="token.revoked",
            actor=actor or who,
            interface=interface,
            rows=len(found),
            details={"token_user": found[0][1], "prefixes": [p for p, _n in found]},
        )
    log.info("api tokens revoked", extra={"token_user": who, "count": len(found)})
    return len(found)


def user_for_token(engine: Engine, token: str) -> TokenUser | None:
    """The user an active, unexpired token acts for, or None; records when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    t = api_tokens
    stmt = (
        select(
            t.c.id,
            t.c.revoked_at,
            t.c.expires_at,
            t.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.username,
            users.c.role,
        )
        .join(users, users.c.id == t.c.user_id)
        .where(t.c.token_hash == hash_token(token))
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    now = utcnow()
    expires = as_utc(row["expires_at"])
    if expires is not None and expires <= now:
        return None
    last = as_utc(row["last_used_at"])
    if last is None or now - last >= LAST_USED_RESOLUTION:
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == row["id"]).values(last_used_at=now))
    return TokenUser(user_id=str(row["user_id"]), username=str(row["username"]), role=row["role"])
