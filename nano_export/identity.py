"""Input rules for people: user names and passwords, the same at ``users add`` and at login.

* A user name is NFKC-normalised, stripped and lower-cased; it is refused when it holds an invisible
  or control character (a zero-width space, a soft hyphen, …), white space, or letters of more than
  one script (a Cyrillic ``а`` among Latin letters), so that no name can pass for another.
* A password is stripped of surrounding white space wherever it is entered (streamlit-authenticator
  strips at login, so ``users add`` does the same), must have at least ``min_length`` characters,
  and at most 72 bytes in UTF-8: bcrypt ignores everything after the 72nd byte.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from nano_export.errors import BadInput

BCRYPT_MAX_BYTES: Final = 72
MAX_NAME_CHARS: Final = 64
#: Unicode categories that print nothing (or move the cursor): format, control, unassigned,
#: private use, separators.
_INVISIBLE: Final = frozenset({"Cf", "Cc", "Cn", "Co", "Cs", "Zs", "Zl", "Zp"})
_NAME_PUNCTUATION: Final = frozenset("._-@+")


def _script(ch: str) -> str | None:
    """The script of a letter (LATIN, CYRILLIC, GREEK, …), or None for digits and punctuation."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def normalize_username(raw: str) -> str:
    """The stored form of a user name, or BadInput naming what is wrong with it."""
    name = unicodedata.normalize("NFKC", raw).strip().lower()
    if not name:
        raise BadInput("a user name is required")
    if len(name) > MAX_NAME_CHARS:
        raise BadInput(f"a user name has at most {MAX_NAME_CHARS} characters")
    for ch in name:
        if unicodedata.category(ch) in _INVISIBLE:
            what = "spaces" if ch.isspace() else f"invisible characters (U+{ord(ch):04X})"
            raise BadInput(f"user name {raw!r} must not contain {what}")
        if not (ch.isalnum() or ch in _NAME_PUNCTUATION or unicodedata.category(ch) == "Mn"):
            raise BadInput(
                f"user name {raw!r} may hold only letters, digits and . _ - @ + (not {ch!r})"
            )
    scripts = sorted({s for s in map(_script, name) if s})
    if len(scripts) > 1:
        raise BadInput(
            f"user name {raw!r} mixes scripts ({' and '.join(scripts)}); "
            "use the letters of one script"
        )
    return name


def login_password(raw: str) -> str:
    """A password as typed, with the strip rule applied (login and ``users add`` alike)."""
    return raw.strip()


def check_new_password(raw: str, *, min_length: int) -> str:
    """The password to store, or BadInput saying which rule it breaks."""
    password = login_password(raw)
    if not password:
        raise BadInput("the password must not be empty")
    if len(password) < min_length:
        raise BadInput(
            f"the password must have at least {min_length} characters "
            f"(it has {len(password)}); NANO_EXPORT_PASSWORD_MIN_LENGTH sets the minimum"
        )
    if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise BadInput(
            f"the password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8: "
            "bcrypt ignores everything after that"
        )
    return password
