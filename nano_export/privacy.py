"""The privacy policy: one redaction path for the dashboard preview and every export file.

Credentials are redacted at every level; ``standard`` also masks emails and home-directory user
names and hashes ``session_id``; ``public`` leaves free text out and hashes every identity.

Speed: an export passes a million rows through :func:`apply_policy`. Each free-text column is first
screened with one RE2 pattern (``pyarrow.compute``, vectorised, no Python per cell); only the few
cells the screen flags run the Python substitution. The screen is deliberately looser than the
substitution patterns (every text the substitution would change is flagged), so it never lets a
secret through; ``tests/test_privacy.py`` checks that property.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Boolean, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from nano_export.datasets import FREE_TEXT, IDENTITY
from nano_export.errors import BadInput, InvalidSetting, PermissionDenied
from nano_export.models import ALLOWED_LEVELS, PRIVACY_LEVELS, Privacy, Role

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
EMAIL = "[EMAIL]"
USER = "[USER]"
HASH_LENGTH = 16

# --- credentials -------------------------------------------------------------------------------

# Key names whose value is a secret (`password=…`, `"api_key": "…"`, `AWS_SECRET_ACCESS_KEY=…`).
_KEY_CORE = (
    r"(?:password|passwd|passphrase|pwd|secret(?:[_-]?access[_-]?key|[_-]?key)?|api[_-]?key|apikey"
    r"|token|private[_-]?key|account[_-]?key)"
)
# Where a key name may start: not after a letter or digit (monkey, maxtokens), except at a camelCase
# boundary (dbPassword, accessToken, DBPassword) or glued to an upper-case prefix when the key is
# upper case up to its ':' or '=' (DBPASSWORD=, APPSECRET=, an environment variable; not sudo's
# NOPASSWD:). The leading look-ahead on the first letters of _KEY_CORE (keep them in step) rejects
# most positions at once: three times faster on prose.
_KEY_START = (
    r"(?=[AaPpSsTt])(?:(?<![A-Za-z0-9])|(?=[A-Z])(?<=[a-z0-9])|(?=[A-Z][a-z])(?<=[A-Z])"
    r"|(?<=[A-Z])(?<!NO)(?=[A-Z_-]+\\?[\"']?[ \t]*[:=]))"
)
_TOKEN_CHARS = r"[A-Za-z0-9_.~+/-]"  # RFC 6750 b64token
_GITLAB_KINDS = ("pat", "dt", "rt", "ptt", "cbt", "ft", "imt", "soat", "agent", "oas", "ffct")
_GITLAB = rf"gl(?:{'|'.join(_GITLAB_KINDS)})-"  # glpat-, gldt-, … token prefixes


@dataclass(frozen=True)
class _Rule:
    """One kind of credential: a pattern, run only when one of its trigger strings is present.

    A ``keep`` group is kept before ``[REDACTED]``; a quoted value keeps its quotes.
    """

    name: str
    triggers: re.Pattern[str]  # the trigger strings as one search: one C call, no Python loop
    pattern: re.Pattern[str]
    lower: bool = False  # compare the triggers with the lower-cased text


def _rule(name: str, triggers: tuple[str, ...], pattern: str, *, lower: bool = False) -> _Rule:
    search = re.compile("|".join(re.escape(trigger) for trigger in triggers))
    return _Rule(name, search, re.compile(pattern, re.ASCII), lower)


# Each token pattern runs to the end of its word, so a redaction never leaves a word fragment that
# a second pass would take for the start of another token (redaction is idempotent).
# Order matters: whole blocks and contexts first, so that a later, narrower rule never leaves part
# of a secret behind (``token: Bearer abc…`` loses the bearer token before the pair rule runs).
# Minimum lengths (and a digit for ``sk-``) keep look-alikes such as ``sk-learn``,
# ``hf_hub_download`` or ``risk-free`` intact.
_RULES: tuple[_Rule, ...] = (
    _rule(
        "private_key",
        ("PRIVATE KEY",),
        # Multi-line; a block cut off before its END line is redacted to the end of the text.
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
    ),
    # scheme://user:PASSWORD@host: keep scheme, user and host. The password runs to the last '@'
    # of the authority (p@ssw0rd): first without quotes, '?' or '#' (compact JSON, an email in the
    # query), else with them (p#ss"w).
    _rule(
        "url_password",
        ("://",),
        r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#\"'<>\\]*:)"
        r"(?:[^\s/?#\"'<>\\]+(?=@)|[^\s/]+(?=@))",
    ),
    # A password with '/' (pa/ss). RFC 3986 ends the authority at the first '/', so
    # "https://example.com:8443/path@v2" is a host, a port and a path with '@' in it, and so is
    # "http://example.com/a:b@c" (no ':' before the first '/': never a password). A password is
    # read only where the RFC reading cannot hold: the text before the first '/' is not a port (not
    # digits only, not empty), and the user has no '@' ("git@github.com:org/repo.git@v1" is an
    # scp-like repository path and a tag) and no '[' (an IPv6 host). The password runs to the first
    # '@' followed by a host without '@' (a/b@c@host: host "host"), never into the path; at most 500
    # characters, so that a long word full of "://" stays linear.
    _rule(
        "url_password_with_slash",
        ("://",),
        r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#\"'<>\\@\[\]]*:)"
        r"(?![0-9]*/)[^\s/?#\"'<>\\@]*/[^\s?#\"'<>\\]{0,500}?"
        r"(?=@[^\s/?#@\"'<>\\]+(?:[\s/?#\"'<>\\]|\Z))",
    ),
    # Slack webhooks: keep the host, redact the path that is the secret.
    _rule(
        "slack_webhook",
        ("hooks.slack.com/",),
        r"(?P<keep>(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/)"
        r"[A-Za-z0-9_/-]{10,}",
    ),
    _rule(
        "authorization",
        ("authorization",),
        r"(?P<keep>(?i:\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:bearer|basic|token)[ \t]+))"
        r"[^\s\"',;]+",
        lower=True,
    ),
    # A bare "Bearer TOKEN": the token must look like one (a digit, or long).
    _rule(
        "bearer",
        ("bearer",),
        r"(?P<keep>(?i:\bbearer)[ \t]+)"
        r"(?:(?=" + _TOKEN_CHARS + r"*\d)" + _TOKEN_CHARS + r"{8,}|" + _TOKEN_CHARS + r"{20,})=*",
        lower=True,
    ),
    # sk-proj-, sk-svcacct-, sk-admin-, sk-ant-…: the prefix suffices; a bare sk- needs a digit.
    _rule(
        "openai",
        ("sk-",),
        r"\bsk-(?:(?:proj|svcacct|admin|ant|None)-|(?=[A-Za-z0-9_-]*\d))[A-Za-z0-9_-]{20,}",
    ),
    _rule("stripe", ("k_live_", "k_test_"), r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\w*"),
    # An AWS secret access key in context: 40 base64 characters within a line after a key id
    # ("AKIA… / wJalr…"). Runs before the key-id rule, which then redacts the id itself.
    _rule(
        "aws_secret_after_key_id",
        ("AKIA", "ASIA"),
        r"(?P<keep>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b[^\n]{0,100}?)"
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    ),
    _rule("aws_access_key_id", ("AKIA", "ASIA"), r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    _rule("github", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"\bgh[pousr]_[A-Za-z0-9]{30,}\w*"),
    _rule("github_pat", ("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    _rule("slack_token", ("xox", "xapp-"), r"\b(?:xox[abprs]|xapp)-[A-Za-z0-9-]{10,}\w*"),
    _rule("google_api_key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35,}"),
    _rule("hugging_face", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}\w*"),
    _rule("jwt", ("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # GitLab personal, deploy, runner, CI job, … tokens (a newer format adds .-separated parts).
    _rule(
        "gitlab",
        tuple(f"gl{kind}-" for kind in _GITLAB_KINDS),
        r"\b" + _GITLAB + r"[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
    ),
    _rule("npm", ("npm_",), r"\bnpm_[A-Za-z0-9]{36}\w*"),
    _rule("google_oauth", ("ya29.",), r"\bya29\.[A-Za-z0-9_-]{20,}"),
    # Azure connection strings (AccountKey=…;) and SAS tokens (…&sig=…).
    _rule(
        "azure_connection",
        ("accountkey", "sharedaccesskey", "sharedaccesssignature"),
        r"(?P<keep>(?i:\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)[ \t]*=[ \t]*))"
        r"[^\s;\"'<>]+",
        lower=True,
    ),
    _rule("azure_sas", ("sig=",), r"(?P<keep>[?&;]sig=)[^\s&;#\"'<>]+"),
    # Command lines: --password VALUE, --client-secret 'VALUE', mysql -pVALUE.
    # (mysql: the -p option within 500 characters of the program name, so the scan stays linear.)
    _rule(
        "cli_option",
        ("--",),
        # Starts with the literal "--" (fast search); the look-behind then checks that the option
        # starts an argument (after a space, a quote, "[" or "("), also in a JSON or Python list of
        # arguments: ["--password", "VALUE"].
        r"(?P<keep>--(?<![^\s\"'(\[]--)(?!no-)(?:[A-Za-z0-9]+[_-])*(?i:" + _KEY_CORE + r"|pass)"
        r"(?:[ \t]+|(?P<q>\\?[\"'])[ \t]*,[ \t]*))"
        # The value is not the next option (-h); unquoted only after a space.
        r"(?!\\?[\"']?-)(?:\\\"[^\"\n]+?\\\"|\"[^\"\n]+\"|'[^'\n]+'|(?(q)(?!))[^\s\"'][^\s\"';&|<>]*)",
    ),
    _rule(
        "mysql_short_password",
        ("mysql",),
        r"(?P<keep>(?i:\bmysql(?:dump|admin|import|show|check|slap|pump|sh)?\b)[^\n|;&]{0,500}?"
        r"[ \t]-p)[^\s\"']+",
        lower=True,
    ),
    # key=value / "key": "value" pairs (password=, api_key:, AWS_SECRET_ACCESS_KEY=, …).
    _rule(
        "key_value",
        ("pass", "pwd", "secret", "key", "token"),
        # The key may have any prefix after a separator (db_password, AWS_SECRET_ACCESS_KEY) or at a
        # camelCase boundary (dbPassword) but not inside a word (monkey: banana). Values may be
        # quoted, also as \"…\".
        r"(?P<keep>" + _KEY_START + r"(?i:" + _KEY_CORE + r")\\?[\"']?[ \t]*[:=][ \t]*)"
        r"(?:\\\"[^\"\n]+?\\\"|\"[^\"\n]+\"|'[^'\n]+'|[^\s\"',;&<>=][^\s\"',;&<>]*)",
        lower=True,
    ),
)

# Pre-screen: matches every text that a rule above could change, and few others. It must stay a
# superset of the rules: tests check this on every corpus entry. Written as a case-sensitive and a
# case-insensitive part, so that it reads the same in RE2 (pyarrow, SQLite's regexp) and, with
# \b left out (only a wider match), in PostgreSQL's regular expressions (``masked_text_sql``).
_CREDENTIAL_CASED = (
    r"PRIVATE KEY|://[^\s/]*:[^\s/]*@|://[^\s/@]*:[^\s/@]*/[^\s]*@|hooks\.slack\.com/"
    r"|\bsk-[A-Za-z0-9_-]{20}|[sr]k_(?:live|test)_|A(?:KIA|SIA)[A-Z0-9]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30}|github_pat_|xox[abprs]-|xapp-|AIza|hf_[A-Za-z0-9]{30}"
    r"|eyJ[A-Za-z0-9_-]{8}|" + _GITLAB + r"[A-Za-z0-9_-]{20}|npm_[A-Za-z0-9]{36}|ya29\.|[?&;]sig="
)
_CREDENTIAL_ANY_CASE = (
    r"(?:passwd|password|passphrase|pwd|secret|key|token|authorization|signature)\\?[\"']?"
    r"[ \t]*[:=]|bearer[ \t]|--[A-Za-z0-9_-]*(?:pass|pwd|secret|key|token)[A-Za-z_-]*"
    r"(?:[ \t]|\\?[\"'][ \t]*,)"
    r"|mysql[^\n]*[ \t]-p"
)
_CREDENTIAL_SCREEN = f"{_CREDENTIAL_CASED}|(?i:{_CREDENTIAL_ANY_CASE})"


def _replacement(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep") or ""
    value = match.group(0)[len(keep) :]
    quote = ""
    for candidate in ('\\"', '"', "'"):
        if (
            len(value) >= 2 * len(candidate)
            and value.startswith(candidate)
            and value.endswith(candidate)
        ):
            quote = candidate
            break
    return f"{keep}{quote}{REDACTED}{quote}"


def redact_credentials(text: str) -> str:
    """Replace every credential in ``text`` (API keys, tokens, passwords, private keys) by
    ``[REDACTED]``, keeping the surrounding text (and the key name, URL user and host)."""
    lowered: str | None = None
    for rule in _RULES:
        if rule.lower:
            if lowered is None:
                lowered = text.lower()
            haystack = lowered
        else:
            haystack = text
        if rule.triggers.search(haystack):
            redacted = rule.pattern.sub(_replacement, text)
            if redacted != text:
                text, lowered = redacted, None
    return text


# --- personal data -----------------------------------------------------------------------------

_USER_NAME = r"[^\s/\\'\"<>:;,\[\]]+"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.ASCII)
_HOME = re.compile(
    r"(?P<keep>(?<![\w.\]-])/(?:home|Users)/|\b[A-Za-z]:\\{1,2}(?i:users)\\{1,2})" + _USER_NAME,
    re.ASCII,
)
# RE2 (pyarrow) pre-screen for the two patterns above.
_PERSONAL_CASED = r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]|/home/|/Users/"
_PERSONAL_ANY_CASE = r"users\\"
_PERSONAL_SCREEN = f"{_PERSONAL_CASED}|(?i:{_PERSONAL_ANY_CASE})"


def _home_replacement(match: re.Match[str]) -> str:
    return match.group("keep") + USER


def mask_personal(text: str) -> str:
    """Mask emails as ``[EMAIL]`` and home-directory user names in paths as ``[USER]``."""
    if "@" in text:
        text = _EMAIL.sub(EMAIL, text)
    if "/home/" in text or "/Users/" in text or "\\" in text:
        text = _HOME.sub(_home_replacement, text)
    return text


def _redact_standard(text: str) -> str:
    return mask_personal(redact_credentials(text))


# --- identities --------------------------------------------------------------------------------


def _hmac_base(secret: str) -> hmac.HMAC:
    if not secret:
        raise InvalidSetting("SECRET_KEY is empty: identifiers cannot be hashed without a secret")
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def stable_hash(value: str, secret: str) -> str:
    """HMAC-SHA256 of ``value`` keyed by ``secret``: 16 hex characters, the same in every
    process, and not recoverable by guessing values without the secret."""
    mac = _hmac_base(secret)
    mac.update(value.encode("utf-8"))
    return mac.hexdigest()[:HASH_LENGTH]


def _hash_series(series: pd.Series, secret: str) -> pd.Series:
    """Hash each distinct non-null value once; nulls stay null."""
    base = _hmac_base(secret)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    hashed: list[str] = []
    for unique in uniques:
        mac = base.copy()
        mac.update(str(unique).encode("utf-8"))
        hashed.append(mac.hexdigest()[:HASH_LENGTH])
    # Gather in Arrow: no Python string per row. Code -1 (null) becomes a masked index: null.
    indices = pa.array(codes, mask=codes < 0, type=pa.int64())
    values = pa.array(hashed, type=pa.large_string()).take(indices)
    return pd.Series(values, index=series.index, name=series.name, dtype="str")


# --- free text ---------------------------------------------------------------------------------


# --- free text in filters ----------------------------------------------------------------------


class MayBeMasked(ColumnElement[bool]):
    """SQL: the text may hold something a privacy level masks (a credential, an email, a
    home-directory name), by the pre-screen above. True for every such text, false for text that
    every level shows unchanged; NULL for NULL.

    A ``where`` on free text is evaluated on the stored text, so it is guarded with this: a
    condition on text that a mask covers would let row counts spell out the masked value.
    """

    inherit_cache = False
    type = Boolean()

    def __init__(self, text: ColumnElement[Any]) -> None:
        self.text = text


@compiles(MayBeMasked)
def _may_be_masked_re2(element: MayBeMasked, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite (and any engine whose regexp is RE2, like nano-export's SQLite connections).
    screen = f"{_CREDENTIAL_SCREEN}|{_PERSONAL_SCREEN}"
    return f"({compiler.process(element.text.regexp_match(screen), **kw)})"


@compiles(MayBeMasked, "postgresql")
def _may_be_masked_pg(element: MayBeMasked, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL's regular expressions: no (?i:…) groups (the case-insensitive part goes to ~*)
    # and \b means backspace there (left out: the screen only widens).
    cased = f"{_CREDENTIAL_CASED}|{_PERSONAL_CASED}".replace(r"\b", "")
    any_case = f"{_CREDENTIAL_ANY_CASE}|{_PERSONAL_ANY_CASE}"
    guard = or_(element.text.regexp_match(cased), element.text.regexp_match(any_case, flags="i"))
    return f"({compiler.process(guard, **kw)})"


def _redact_series(series: pd.Series, screen: str, redact: Callable[[str], str]) -> pd.Series:
    """Apply ``redact`` to the cells of a text column that ``screen`` flags."""
    dtype = series.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        series = series.astype("str")  # object or other columns: text from here on
    arr = pa.array(series)
    if isinstance(arr, pa.ChunkedArray):  # a frame built by pd.concat
        arr = arr.combine_chunks()
    flagged = pc.fill_null(pc.match_substring_regex(arr, screen), False)
    count = pc.sum(flagged).as_py() or 0
    if count == 0:
        return series
    originals = arr.filter(flagged).to_pylist()
    replacements = pa.array([redact(text) for text in originals], type=arr.type)
    result = pc.replace_with_mask(arr, flagged, replacements)
    logger.debug(
        "redacted text column",
        extra={"column": series.name, "rows": len(series), "screened_in": count},
    )
    return pd.Series(result, index=series.index, name=series.name, dtype=series.dtype)


def apply_policy(df: pd.DataFrame, *, level: Privacy, secret: str) -> pd.DataFrame:
    """Return ``df`` as the privacy ``level`` allows it to be shown or written.

    Acts on the free-text and identity columns present; ``df`` itself is left unchanged.
    """
    if level not in PRIVACY_LEVELS:
        raise BadInput(
            f"unknown privacy level {level!r}; expected one of {', '.join(PRIVACY_LEVELS)}"
        )
    out = df.copy(deep=False)
    free_text = [name for name in out.columns if name in FREE_TEXT]
    if level == "public":
        out = out.drop(columns=free_text)
        for name in out.columns:
            if name in IDENTITY:
                out[name] = _hash_series(out[name], secret)
        return out
    if level == "standard":
        screen = f"{_CREDENTIAL_SCREEN}|{_PERSONAL_SCREEN}"
        redact: Callable[[str], str] = _redact_standard
        if "session_id" in out.columns:
            out["session_id"] = _hash_series(out["session_id"], secret)
    else:
        screen, redact = _CREDENTIAL_SCREEN, redact_credentials
    for name in free_text:
        out[name] = _redact_series(out[name], screen, redact)
    return out


# --- roles -------------------------------------------------------------------------------------


def check_level(role: Role, level: Privacy) -> None:
    """Raise ``PermissionDenied`` unless ``role`` may export privacy ``level``."""
    allowed = ALLOWED_LEVELS.get(role, ())
    if level in allowed:
        return
    if not allowed:
        raise PermissionDenied(
            f"role {role!r} may not export; privacy level {level!r} was requested"
        )
    names = " and ".join(repr(name) for name in allowed)
    noun = "level" if len(allowed) == 1 else "levels"
    raise PermissionDenied(
        f"role {role!r} may export privacy {noun} {names} only; {level!r} was requested"
    )


def columns_for_level(names: Sequence[str], level: Privacy) -> list[str]:
    """The column names that an export at ``level`` contains (no free text at ``public``)."""
    if level == "public":
        return [name for name in names if name not in FREE_TEXT]
    return list(names)
