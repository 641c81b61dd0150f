"""Dashboard users: streamlit-authenticator's credentials file (bcrypt hashes, roles, cookie).

The file at ``settings.auth_file`` looks like::

    credentials:
      usernames:
        alice: {email: ..., name: ..., password: <bcrypt hash>, roles: [analyst]}
    cookie: {name: nano_export_auth, expiry_days: 30}

The cookie *key* is never stored here: it is ``settings.resolved_secret()``.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import bcrypt
import yaml

from nano_export.errors import BadInput
from nano_export.models import ROLES, Role

log = logging.getLogger(__name__)

DEFAULT_COOKIE_NAME: Final = "nano_export_auth"
DEFAULT_EXPIRY_DAYS: Final = 30.0
_RANK: Final[dict[str, int]] = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class UserInfo:
    """One dashboard user as stored in the credentials file (the hash stays in the file)."""

    username: str
    name: str
    email: str | None
    role: Role
    password_hash: str


def _empty_config() -> dict[str, Any]:
    return {
        "credentials": {"usernames": {}},
        "cookie": {"name": DEFAULT_COOKIE_NAME, "expiry_days": DEFAULT_EXPIRY_DAYS},
    }


@functools.lru_cache(maxsize=8)
def _parse(path: str, inode: int, mtime_ns: int, size: int) -> Any:
    """The parsed file, cached per version of it: every API request and rerun asks for roles."""
    del inode, mtime_ns, size  # the cache key only: a rewritten (replaced) file is parsed again
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not a valid users file: {exc}") from None


def read_config(path: Path) -> dict[str, Any]:
    """The credentials file as a dict (a fresh default when the file does not exist)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _empty_config()
    data = copy.deepcopy(_parse(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size))
    if not isinstance(data, dict):
        raise BadInput(f"{path}: not a valid users file: expected a mapping at the top")
    config = _empty_config()
    creds = data.get("credentials") or {}
    config["credentials"]["usernames"] = dict(creds.get("usernames") or {})
    config["cookie"].update(data.get("cookie") or {})
    return config


def _write_config(path: Path, config: dict[str, Any]) -> None:
    # Temp file in the same folder, then rename: readers never see a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".auth-", suffix=".yaml.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=True, allow_unicode=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _best_role(roles: object) -> Role | None:
    names = [roles] if isinstance(roles, str) else list(roles or [])  # type: ignore[call-overload]
    known = [r for r in names if r in _RANK]
    if not known:
        return None
    return cast(Role, max(known, key=lambda r: _RANK[r]))


def load_users(path: Path) -> dict[str, UserInfo]:
    """Every user of the file by username; users without a known role are left out."""
    users: dict[str, UserInfo] = {}
    for username, entry in read_config(path)["credentials"]["usernames"].items():
        entry = entry or {}
        role = _best_role(entry.get("roles"))
        if role is None:
            log.warning("user without a known role ignored", extra={"user": username})
            continue
        users[str(username)] = UserInfo(
            username=str(username),
            name=str(entry.get("name") or username),
            email=entry.get("email"),
            role=role,
            password_hash=str(entry.get("password") or ""),
        )
    return users


def role_of(path: Path, username: str) -> Role | None:
    """The role of ``username`` (case-insensitive), or None for an unknown user."""
    user = load_users(path).get(username.lower())
    return user.role if user else None


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password``."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def check_password(path: Path, username: str, password: str) -> bool:
    """Whether ``password`` is the password of ``username``."""
    user = load_users(path).get(username.lower())
    if user is None or not user.password_hash:
        return False
    try:
        return bcrypt.checkpw(password.encode("utf-8"), user.password_hash.encode("ascii"))
    except ValueError:
        return False


def add_user(
    path: Path,
    *,
    username: str,
    role: str,
    password: str,
    email: str | None = None,
    name: str | None = None,
) -> None:
    """Add a user with a bcrypt-hashed password; refuses duplicates, empty passwords, bad roles."""
    path = Path(path)
    key = username.strip().lower()
    if not key:
        raise BadInput("a user name is required")
    if any(c.isspace() for c in key):
        raise BadInput(f"user name {username!r} must not contain spaces")
    if role not in _RANK:
        raise BadInput(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if not password:
        raise BadInput("the password must not be empty")
    config = read_config(path)
    usernames = config["credentials"]["usernames"]
    if key in usernames:
        raise BadInput(f"user {key!r} already exists in {path}")
    usernames[key] = {
        "email": email or f"{key}@localhost",
        "name": name or key,
        "password": hash_password(password),
        "roles": [role],
    }
    _write_config(path, config)
    log.info("user added", extra={"user": key, "role": role, "auth_file": str(path)})


def cookie_name(path: Path) -> str:
    """Name of the dashboard's login cookie."""
    return str(read_config(path)["cookie"].get("name") or DEFAULT_COOKIE_NAME)


def cookie_expiry_days(path: Path) -> float:
    """Days a login cookie stays valid."""
    return float(read_config(path)["cookie"].get("expiry_days") or DEFAULT_EXPIRY_DAYS)


def authenticator_credentials(path: Path) -> dict[str, Any]:
    """The ``credentials`` dict to hand streamlit-authenticator (a copy, never the path)."""
    usernames = read_config(path)["credentials"]["usernames"]
    return {"usernames": {u: dict(v or {}) for u, v in usernames.items()}}
