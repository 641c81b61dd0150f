"""Dashboard and API users, kept in the ``users`` table of the shared database.

Each user has a random, never reused id: API tokens and login sessions belong to that id, so
removing a user and adding the same name again revives nothing. Passwords are bcrypt hashes;
names and passwords follow :mod:`nano_export.identity`. streamlit-authenticator gets its
credentials from here (:func:`authenticator_credentials`) and never writes them back.

An older installation kept its users in a YAML file (streamlit-authenticator's format, at
``NANO_EXPORT_AUTH_FILE``): :func:`import_users_file` copies it in once (``nano-export init``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import bcrypt
import yaml
from sqlalchemy import Connection, Engine, delete, select, update

from nano_export import audit, keystore
from nano_export.db import utcnow
from nano_export.errors import BadInput
from nano_export.identity import check_new_password, login_password, normalize_username
from nano_export.models import ROLES, Role
from nano_export.schema import api_tokens, login_sessions, users

log = logging.getLogger(__name__)

COOKIE_NAME: Final = "nano_export_auth"
DEFAULT_ROUNDS: Final = 12
IMPORTED_MARK: Final = "users_file_imported"
_RANK: Final[dict[str, int]] = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class UserInfo:
    """One user as stored (the hash never leaves the package's login checks)."""

    id: str
    username: str
    name: str
    email: str | None
    role: Role
    password_hash: str


def _info(row: Any) -> UserInfo:
    return UserInfo(
        id=str(row["id"]),
        username=str(row["username"]),
        name=str(row["name"]),
        email=row["email"],
        role=cast(Role, row["role"]),
        password_hash=str(row["password_hash"]),
    )


def _lookup_key(username: str) -> str:
    """The stored form of a name typed at login or on a command line (never raises)."""
    try:
        return normalize_username(username)
    except BadInput:
        return username.strip().lower()


def find_user(conn: Connection, username: str) -> UserInfo | None:
    """The user called ``username`` (case-insensitive, NFKC), or None."""
    stmt = select(users).where(users.c.username == _lookup_key(username))
    row = conn.execute(stmt).mappings().first()
    return None if row is None else _info(row)


def get_user(engine: Engine, username: str) -> UserInfo | None:
    """The user called ``username``, or None."""
    with engine.connect() as conn:
        return find_user(conn, username)


def get_user_by_id(engine: Engine, user_id: str) -> UserInfo | None:
    """The user with id ``user_id``, or None (removed)."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    return None if row is None else _info(row)


def load_users(engine: Engine) -> dict[str, UserInfo]:
    """Every user by user name."""
    with engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.username)).mappings().all()
    return {str(r["username"]): _info(r) for r in rows}


def role_of(engine: Engine, username: str) -> Role | None:
    """The role of ``username`` (case-insensitive), or None for an unknown user."""
    user = get_user(engine, username)
    return user.role if user else None


def _check_role(role: str) -> Role:
    if role not in _RANK:
        raise BadInput(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    return cast(Role, role)


def hash_password(password: str, *, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt hash of ``password``."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


@functools.lru_cache(maxsize=8)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"no user has this password", bcrypt.gensalt(rounds))


def _rounds_of(password_hash: str) -> int:
    try:
        return int(password_hash.split("$")[2])
    except (IndexError, ValueError):
        return DEFAULT_ROUNDS


def _bcrypt_matches(password: str, password_hash: bytes) -> bool:
    data = password.encode("utf-8")[:72]  # bcrypt reads 72 bytes; newer bcrypt refuses more
    try:
        return bcrypt.checkpw(data, password_hash)
    except ValueError:
        return False


def verify_password(
    engine: Engine, username: str, password: str, *, rounds: int = DEFAULT_ROUNDS
) -> UserInfo | None:
    """The user if ``password`` is theirs, else None.

    An unknown user costs one bcrypt check of ``rounds`` all the same, so the time taken does not
    tell which users exist.
    """
    user = get_user(engine, username)
    typed = login_password(password)
    if user is None or not user.password_hash.startswith("$2"):
        _bcrypt_matches(typed, _dummy_hash(rounds if user is None else DEFAULT_ROUNDS))
        return None
    return user if _bcrypt_matches(typed, user.password_hash.encode("ascii")) else None


def dummy_rounds(engine: Engine, default: int = DEFAULT_ROUNDS) -> int:
    """The bcrypt cost of the stored hashes (the most common), for the unknown-user check."""
    with engine.connect() as conn:
        hashes = list(conn.execute(select(users.c.password_hash).limit(50)).scalars())
    if not hashes:
        return default
    costs = [_rounds_of(h) for h in hashes]
    return max(set(costs), key=costs.count)


def _insert_user(
    conn: Connection,
    *,
    username: str,
    role: Role,
    password_hash: str,
    email: str | None,
    name: str | None,
) -> UserInfo:
    if find_user(conn, username) is not None:
        raise BadInput(f"user {username!r} already exists")
    now = utcnow()
    values = {
        "id": uuid.uuid4().hex,
        "username": username,
        "name": name or username,
        "email": email or f"{username}@localhost",
        "password_hash": password_hash,
        "role": role,
        "created_at": now,
        "password_changed_at": now,
    }
    conn.execute(users.insert().values(**values))
    return _info(values)


def add_user(
    engine: Engine,
    *,
    username: str,
    role: str,
    password: str,
    email: str | None = None,
    name: str | None = None,
    min_length: int = 12,
    rounds: int = DEFAULT_ROUNDS,
    actor: str | None = None,
    interface: str = "cli",
) -> UserInfo:
    """Add a user with a bcrypt-hashed password (audited ``user.created``); BadInput if not."""
    key = normalize_username(username)
    checked_role = _check_role(role)
    secret = check_new_password(password, min_length=min_length)
    with engine.begin() as conn:
        if find_user(conn, key) is not None:  # before the slow hash
            raise BadInput(f"user {key!r} already exists")
        user = _insert_user(
            conn,
            username=key,
            role=checked_role,
            password_hash=hash_password(secret, rounds=rounds),
            email=email,
            name=name,
        )
        audit.record(
            conn,
            event="user.created",
            actor=key,
            interface=interface,
            details={"role": checked_role, "by": actor or key},
        )
    log.info("user added", extra={"user": key, "role": checked_role})
    return user


def _require(conn: Connection, username: str) -> UserInfo:
    user = find_user(conn, username)
    if user is None:
        raise BadInput(f"no user {username.strip().lower()!r}; `nano-export users list` shows them")
    return user


def end_sessions(conn: Connection, *, user_id: str, reason: str) -> int:
    """End every open login session of the user; how many were open."""
    t = login_sessions
    result = conn.execute(
        update(t)
        .where(t.c.user_id == user_id, t.c.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
    return int(result.rowcount or 0)


def remove_user(engine: Engine, *, username: str, actor: str, interface: str = "cli") -> UserInfo:
    """Remove a user: their logins end and their tokens are revoked (audited ``user.removed``)."""
    with engine.begin() as conn:
        user = _require(conn, username)
        ended = end_sessions(conn, user_id=user.id, reason="user removed")
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.user_id == user.id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        conn.execute(delete(users).where(users.c.id == user.id))
        audit.record(
            conn,
            event="user.removed",
            actor=actor,
            interface=interface,
            details={"user": user.username, "sessions_ended": ended},
        )
    return user


def set_role(
    engine: Engine, *, username: str, role: str, actor: str, interface: str = "cli"
) -> UserInfo:
    """Give a user another role (audited ``user.role_changed``)."""
    checked = _check_role(role)
    with engine.begin() as conn:
        user = _require(conn, username)
        conn.execute(update(users).where(users.c.id == user.id).values(role=checked))
        audit.record(
            conn,
            event="user.role_changed",
            actor=actor,
            interface=interface,
            details={"user": user.username, "from": user.role, "to": checked},
        )
    return dataclasses.replace(user, role=checked)


def set_password(
    engine: Engine,
    *,
    username: str,
    password: str,
    actor: str,
    interface: str = "cli",
    min_length: int = 12,
    rounds: int = DEFAULT_ROUNDS,
) -> int:
    """Change a user's password; every login of theirs ends. Returns how many sessions ended."""
    secret = check_new_password(password, min_length=min_length)
    with engine.connect() as conn:
        _require(conn, username)
    hashed = hash_password(secret, rounds=rounds)
    with engine.begin() as conn:
        user = _require(conn, username)
        conn.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(password_hash=hashed, password_changed_at=utcnow())
        )
        ended = end_sessions(conn, user_id=user.id, reason="password changed")
        audit.record(
            conn,
            event="user.password_changed",
            actor=actor,
            interface=interface,
            details={"user": user.username, "sessions_ended": ended},
        )
    return ended


def revoke_sessions(engine: Engine, *, username: str, actor: str, interface: str = "cli") -> int:
    """End every login session of a user (audited ``session.revoked``); how many ended."""
    with engine.begin() as conn:
        user = _require(conn, username)
        ended = end_sessions(conn, user_id=user.id, reason="revoked")
        audit.record(
            conn,
            event="session.revoked",
            actor=actor,
            interface=interface,
            rows=ended,
            details={"user": user.username},
        )
    return ended


def authenticator_credentials(engine: Engine) -> dict[str, Any]:
    """The ``credentials`` dict streamlit-authenticator reads (for its cookie login)."""
    return {
        "usernames": {
            u.username: {
                "email": u.email,
                "name": u.name,
                "password": u.password_hash,
                "roles": [u.role],
            }
            for u in load_users(engine).values()
        }
    }


# --- the older YAML users file ------------------------------------------------------------------


def read_users_file(path: Path) -> dict[str, dict[str, Any]]:
    """The ``credentials.usernames`` mapping of a streamlit-authenticator YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not a valid users file: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: not a valid users file: expected a mapping at the top")
    creds = data.get("credentials") or {}
    return {str(k): dict(v or {}) for k, v in (creds.get("usernames") or {}).items()}


def _best_role(roles: object) -> Role | None:
    names = [roles] if isinstance(roles, str) else list(roles or [])  # type: ignore[call-overload]
    known = [r for r in names if r in _RANK]
    if not known:
        return None
    return cast(Role, max(known, key=lambda r: _RANK[r]))


def import_users_file(engine: Engine, path: Path, *, force: bool = False) -> list[str]:
    """Copy the users of a YAML users file into the database, once; the names imported.

    Hashes are kept as they are (no password changes). Users already in the database, and
    entries without a known role or with a name the rules refuse, are skipped with a warning.
    Afterwards the database remembers the import, so a later ``init`` does not bring back a
    user removed since (``force`` imports again).
    """
    path = Path(path)
    if not path.is_file():
        return []
    with engine.connect() as conn:
        done = keystore.get_value(conn, IMPORTED_MARK)
    if done is not None and not force:
        return []
    entries = read_users_file(path)
    imported: list[str] = []
    with engine.begin() as conn:
        for raw_name, entry in entries.items():
            role = _best_role(entry.get("roles"))
            try:
                key = normalize_username(raw_name)
            except BadInput as exc:
                log.warning("user not imported", extra={"reason": str(exc)})
                continue
            if role is None or find_user(conn, key) is not None:
                log.warning("user not imported", extra={"user": key, "role": role})
                continue
            _insert_user(
                conn,
                username=key,
                role=role,
                password_hash=str(entry.get("password") or ""),
                email=entry.get("email"),
                name=entry.get("name"),
            )
            audit.record(
                conn,
                event="user.imported",
                actor=key,
                interface="cli",
                details={"role": role, "from": path.name},
            )
            imported.append(key)
        _link_tokens(conn)
    keystore.put_if_absent(engine, IMPORTED_MARK, str(path))
    return imported


def _link_tokens(conn: Connection) -> None:
    """Give tokens made before users lived in the database their user's id."""
    rows = conn.execute(
        select(api_tokens.c.id, api_tokens.c.name).where(api_tokens.c.user_id.is_(None))
    ).all()
    for token_id, name in rows:
        user = find_user(conn, str(name))
        if user is not None:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(user_id=user.id)
            )
