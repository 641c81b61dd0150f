"""The privacy policy: one redaction path for the dashboard preview and every export file.

Credentials are redacted at every level; ``standard`` also masks emails and home-directory user
names and hashes the identity columns; ``public`` leaves free text out and hashes every identity.

- :mod:`~nano_export.privacy.ruleset`: known credential formats, from CredSweeper's maintained
  ruleset (read as data).
- :mod:`~nano_export.privacy.context`: what agent text adds: key/value pairs, headers, command
  lines, prose, and random-looking strings that a context word names.
- :mod:`~nano_export.privacy.engine`: runs the detectors on a text as stored and as decoded (JSON
  escapes, URL encoding), and masks the stored characters.
- :mod:`~nano_export.privacy.widen`: turns every detector's expression into a sound RE2 and
  PostgreSQL pre-screen, so that only the cells that may hold a secret run Python.
- :mod:`~nano_export.privacy.policy`: levels, roles, hashing, the per-column path and the SQL guard.
"""

from nano_export.privacy.engine import REDACTED
from nano_export.privacy.policy import (
    EMAIL,
    HASH_LENGTH,
    USER,
    MayBeMasked,
    Redactions,
    apply_policy,
    check_level,
    columns_for_level,
    credential_screen,
    engine,
    mask_personal,
    personal_screen,
    redact_credentials,
    screen_flags,
    stable_hash,
)

__all__ = [
    "EMAIL",
    "HASH_LENGTH",
    "REDACTED",
    "USER",
    "MayBeMasked",
    "Redactions",
    "apply_policy",
    "check_level",
    "columns_for_level",
    "credential_screen",
    "engine",
    "mask_personal",
    "personal_screen",
    "redact_credentials",
    "screen_flags",
    "stable_hash",
]
