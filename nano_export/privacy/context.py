"""Secrets that only their context names: what a code scanner's ruleset lacks for agent text.

Known formats come from the maintained ruleset (:mod:`nano_export.privacy.ruleset`). These rules
add what agent text holds besides: keys in ``.env`` files, YAML, JSON and HTTP headers, passwords on
command lines and in prose, URLs with passwords, private-key blocks, cookies, and strings with no
known shape that a context word names and whose characters look random (entropy).

Each rule marks the secret's characters: its ``value`` group, or what follows its ``keep`` group.
Minimum lengths and the entropy test keep look-alikes such as ``sk-learn``, ``max_tokens: 512`` or
a git commit hash intact (``tests/credential_corpus.py`` lists those that must stay unchanged).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from nano_export.privacy.engine import REDACTED, Detector, Span
from nano_export.privacy.widen import widen

# Key names whose value is a secret (`password=…`, `"api_key": "…"`, `AWS_SECRET_ACCESS_KEY=…`).
_KEY_CORE = (
    r"(?:password|passwd|passphrase|pwd|secret(?:[_-]?access[_-]?key|[_-]?key)?|api[_-]?key|apikey"
    r"|token|private[_-]?key(?:[_-]?id)?|account[_-]?key|subscription[_-]?key|access[_-]?key"
    r"|auth|credentials?)"
)
# Where a key name may start: not after a letter or digit (monkey, maxtokens), except at a camelCase
# boundary (dbPassword, accessToken, DBPassword) or glued to an upper-case prefix when the key is
# upper case up to its ':' or '=' (DBPASSWORD=, APPSECRET=, an environment variable; not sudo's
# NOPASSWD:). The leading look-ahead on the first letters of _KEY_CORE (keep them in step) rejects
# most positions at once.
_KEY_START = (
    r"(?=[AaCcPpSsTt])(?:(?<![A-Za-z0-9])|(?=[A-Z])(?<=[a-z0-9])|(?=[A-Z][a-z])(?<=[A-Z])"
    r"|(?<=[A-Z])(?<!NO)(?=[A-Z_-]+\\?[\"']?[ \t]*[:=]))"
)
_TOKEN_CHARS = r"[A-Za-z0-9_.~+/-]"  # RFC 6750 b64token
# A value as command lines and prose write it: quoted (also JSON-escaped quotes) or one word.
_ARG = r"(?:'[^'\n]+'|\"[^\"\n]+\"|\\\"[^\"\n]+?\\\"|(?![-'\"])[^\s\"';&|<>`]+)"
# Within one command: up to 300 characters that do not end it.
_IN_COMMAND = r"[^\n|;&]{0,300}?[ \t]"

_PROVIDERS = (
    "openai|anthropic|mistral|cohere|vercel|groq|replicate|perplexity|together|fireworks|deepseek"
    "|gemini|xai|openrouter|pinecone|huggingface|twilio|sendgrid|mailgun|stripe|slack|discord"
    "|telegram|datadog|sentry|cloudflare|netlify|heroku|supabase|airtable|notion|linear|github"
    "|gitlab|aws|azure|gcp|docker|npm|pypi|langsmith|langfuse|wandb|anyscale|voyage|jina"
)
_CONTEXT_WORD = (
    r"(?i:\b(?:api[ _-]?key|key|token|secret|password|passwd|credential|auth|sid|signature)s?\b)"
)
_CONTEXT_WORD_RE = re.compile(_CONTEXT_WORD, re.ASCII)
# Dots are left out: file names and versions have them, keys rarely (JWTs have their own rules).
_TOKEN_CLASS = r"[A-Za-z0-9+/_=-]"
# A candidate for a random string: a run of 20 token characters (a 32-hex key, a UUID, a 20+
# character key), with a letter and a digit in it.
_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9+/_=-])(?="
    + _TOKEN_CLASS
    + r"*[0-9])(?="
    + _TOKEN_CLASS
    + r"*[A-Za-z])"
    + _TOKEN_CLASS
    + r"{20,}(?!"
    + _TOKEN_CLASS
    + r")",
    re.ASCII,
)
_WINDOW = 40
# The screen of a candidate after a context word on its line: 20 token characters with a digit
# hold a digit with 10 token characters before it or 9 after it (wider: shorter strings and
# longer gaps pass too; a counted gap of 40 would cost RE2 twice the time).
_CANDIDATE_SCREEN = r"[^\n]*(?:[A-Za-z0-9+/_=-]{10}[0-9]|[0-9][A-Za-z0-9+/_=-]{9})"
# Between a context word and its value: a few characters of the same line, never across a
# redaction (a shorter text after redacting must not bring a new value within reach: idempotent).
_GAP = r"(?:(?!\[REDACTED\])[^\n]){{0,{}}}?"
_COMMON_VALUES = frozenset(
    {"true", "false", "none", "null", "yes", "no", "ok", "on", "off", "required", "optional"}
)


def _entropy(value: str) -> float:
    counts = Counter(value)
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def looks_random(value: str) -> bool:
    """A string no person would type: random characters of a key, not a word, id or version.

    Hex needs 32 or 48 characters (a key; a 40-character git hash is not taken) and a UUID counts
    (some services issue UUID keys); anything else needs 20 characters with upper and lower case
    letters and digits, 3.7 bits of entropy per character, and no '=' but padding at the end (a
    ``name=value`` pair is not one string).
    """
    value = value.strip("\"'")
    if "=" in value.rstrip("="):
        return False
    if _UUID.fullmatch(value):
        return True
    if _HEX.fullmatch(value):
        return len(value) in (32, 48) and _entropy(value) >= 3.0
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )
    return len(value) >= 20 and classes == 3 and _entropy(value) >= 3.7


def contextual_random(text: str) -> Iterator[Span]:
    """Random-looking strings with a context word at most 40 characters before them on their line.

    The same as the ``contextual_random`` expression below (which gives its screen), but it looks
    at every candidate, and faster: candidates are rare, context words are not.
    """
    for match in _CANDIDATE.finditer(text):
        start = match.start()
        if not looks_random(match.group()):
            continue
        window_start = max(0, start - _WINDOW - 30)  # a context word is at most ~30 characters
        line_start = text.rfind("\n", window_start, start) + 1
        window = text[max(window_start, line_start) : start]
        if REDACTED in window:
            window = window[window.rindex(REDACTED) + len(REDACTED) :]
        offset = start - len(window)
        for word in _CONTEXT_WORD_RE.finditer(window):
            if start - (offset + word.end()) <= _WINDOW:
                yield start, match.end()
                break


def _plausible_password(value: str) -> bool:
    """A value after 'password is': not a plain word ('stored', 'required', 'changed')."""
    value = value.strip("\"'`")
    if value.lower() in _COMMON_VALUES or len(value) < 6:
        return False
    return not value.isalpha() or not value.islower()


# A value that names where the secret comes from, not the secret: code and template references.
_REFERENCE = re.compile(
    r"(?:os\.|getenv|process\.env|env\(|\$\{|\$[A-Za-z_]|\{\{|<[A-Za-z_]|%\()|.*[(\[]"
)


def _not_a_common_value(value: str) -> bool:
    """A value after a key name: not ``true``, a number, or a reference such as ``os.environ[``."""
    value = value.strip("\"'")
    return (
        value.lower() not in _COMMON_VALUES and not value.isdigit() and not _REFERENCE.match(value)
    )


def _rule(
    name: str,
    pattern: str,
    *,
    flags: int = re.ASCII,
    accept: Callable[[str], bool] | None = None,
    whole_word: bool = False,
    finder: Callable[[str], Iterable[Span]] | None = None,
    cap: int = 8,
    screen: str = "",
    screen_pg: str = "",
) -> Detector:
    return Detector(
        name=name,
        pattern=re.compile(pattern, flags),
        accept=accept,
        whole_word=whole_word,
        finder=finder,
        cap=cap,
        screen=screen,
        screen_pg=screen_pg,
    )


DETECTORS: tuple[Detector, ...] = (
    _rule(
        "private_key",
        # Multi-line; a block cut off before its END line is redacted to the end of the text.
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
    ),
    _rule(
        "putty_private_lines",
        r"(?P<keep>Private-Lines:[ \t]*\d+[ \t]*\r?\n)"
        r"(?P<value>[A-Za-z0-9+/=]{8,}(?:\r?\n[A-Za-z0-9+/=]{8,})*)",
    ),
    # scheme://user:PASSWORD@host: keep scheme, user and host. The password runs to the last '@'
    # of the authority (p@ssw0rd): first without quotes, '?' or '#', else with them (p#ss"w).
    _rule(
        "url_password",
        r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#\"'<>\\]*:)"
        r"(?:[^\s/?#\"'<>\\]+(?=@)|[^\s/]+(?=@))",
    ),
    # A password with '/' (pa/ss), read only where RFC 3986's reading (host, port, path) cannot
    # hold: the text before the first '/' is not a port, and the user has no '@' or '['.
    _rule(
        "url_password_with_slash",
        r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#\"'<>\\@\[\]]*:)"
        r"(?![0-9]*/)[^\s/?#\"'<>\\@]*/[^\s?#\"'<>\\]{0,500}?"
        r"(?=@[^\s/?#@\"'<>\\]+(?:[\s/?#\"'<>\\]|\Z))",
    ),
    # A DSN whose user part is the key (Sentry: https://KEY@o1.ingest.sentry.io/2).
    _rule("dsn_key", r"\b[a-z][a-z0-9+.-]*://(?P<value>[0-9a-f]{32}(?::[0-9a-f]{32})?)@"),
    _rule(
        "slack_webhook",
        r"(?P<keep>(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/)"
        r"[A-Za-z0-9_/-]{10,}",
    ),
    _rule(
        "authorization",
        r"(?P<keep>(?i:\b(?:proxy-)?authorization)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
        r"(?:(?i:bearer|basic|token|bot|digest|apikey|sso-key|ntlm|negotiate)[ \t]+)?)"
        r"[^\s\"',;\\]+",
    ),
    # A bare "Bearer TOKEN": the token must look like one (a digit, or long).
    _rule(
        "bearer",
        r"(?P<keep>(?i:\bbearer)[ \t]+)"
        r"(?:(?=" + _TOKEN_CHARS + r"*\d)" + _TOKEN_CHARS + r"{8,}|" + _TOKEN_CHARS + r"{20,})=*",
    ),
    # sk-proj-, sk-svcacct-, sk-admin-, sk-ant-…: the prefix suffices; a bare sk- needs a digit.
    _rule(
        "sk_key",
        r"\bsk-(?:(?:proj|svcacct|admin|ant|None)-|(?=[A-Za-z0-9_-]*\d))[A-Za-z0-9_-]{20,}",
        whole_word=True,
    ),
    _rule("stripe_restricted", r"\brk_(?:live|test)_[A-Za-z0-9]{16,}\w*", whole_word=True),
    _rule("replicate", r"\br8_[A-Za-z0-9]{37}\b", whole_word=True),
    _rule("langsmith", r"\blsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}\b", whole_word=True),
    # An AWS secret access key within a line after its key id ("AKIA… / wJalr…").
    _rule(
        "aws_secret_after_key_id",
        r"(?P<keep>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b[^\n]{0,100}?)"
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    ),
    # Azure connection strings (AccountKey=…;) and SAS tokens (…&sig=…).
    _rule(
        "azure_connection",
        r"(?P<keep>(?i:\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)[ \t]*=[ \t]*))"
        r"[^\s;\"'<>]+",
    ),
    _rule("azure_sas", r"(?P<keep>[?&;]sig=)[^\s&;#\"'<>]+"),
    # Command lines: --password VALUE, --client-secret 'VALUE', also in a JSON list of arguments.
    _rule(
        "cli_option",
        r"(?P<keep>--(?<![^\s\"'(\[]--)(?!no-)(?:[A-Za-z0-9]+[_-])*(?i:" + _KEY_CORE + r"|pass)"
        r"(?:[ \t]+|(?P<q>\\?[\"'])[ \t]*,[ \t]*))"
        r"(?!\\?[\"']?-)(?:\\\"[^\"\n]+?\\\"|\"[^\"\n]+\"|'[^'\n]+'|(?(q)(?!))[^\s\"'][^\s\"';&|<>]*)",
    ),
    _rule(
        "mysql_short_password",
        r"(?P<keep>(?i:\bmysql(?:dump|admin|import|show|check|slap|pump|sh)?\b)[^\n|;&]{0,500}?"
        r"[ \t]-p)[^\s\"']+",
    ),
    # Programs whose short option takes a password: sshpass -p, redis-cli -a, twine -p, docker
    # login -p, ldapsearch -w, mongo/sqlcmd -p, keytool -storepass, openssl -passin pass:….
    _rule(
        "cli_short_password",
        r"(?P<keep>(?:\bsshpass\b(?:[ \t]+-[a-oq-zA-Z]\S*)*[ \t]+-p"
        r"|\bredis-cli\b" + _IN_COMMAND + r"-a"
        r"|\btwine\b" + _IN_COMMAND + r"-p"
        r"|\b(?:docker|podman|helm)[ \t]+(?:registry[ \t]+)?login\b" + _IN_COMMAND + r"-p"
        r"|\bldap[a-z]*\b" + _IN_COMMAND + r"-w"
        r"|\b(?:mongo|mongosh|mongodump|sqlcmd|bcp)\b" + _IN_COMMAND + r"-[pP]"
        r"|\b(?:keytool|jarsigner)\b" + _IN_COMMAND + r"-(?:storepass|keypass)"
        r"|-pass(?:in|out)?[ \t]+pass:)"
        r"[ \t]*)(?P<value>" + _ARG + r")",
    ),
    # curl -u user:PASSWORD (also --user, --proxy-user).
    _rule(
        "curl_user",
        r"(?P<keep>\bcurl\b" + _IN_COMMAND + r"(?:-u|--user|--proxy-user|-U)[ \t]*\\?[\"']?"
        r"[^\s:\"'\\]*:)(?P<value>[^\s\"'\\]+)",
    ),
    # Cookies and query parameters that carry a session (sessionid=…, auth_token=…, jwt=…).
    _rule(
        "session_pair",
        r"(?<![^\s;?&,])(?i:[A-Za-z0-9_.-]*(?:sess|sid|token|auth|jwt|remember)[A-Za-z0-9_.-]*)"
        r"=(?P<value>[^;\s\"'\\&,]{8,})",
    ),
    # key=value / "key": "value" / key: value pairs (password=, api_key:, AWS_SECRET_ACCESS_KEY=).
    _rule(
        "key_value",
        r"(?P<keep>" + _KEY_START + r"(?i:" + _KEY_CORE + r")\\?[\"']?[ \t]*[:=][ \t]*)"
        r"(?:\\\"[^\"\n]+?\\\"|\"[^\"\n]+\"|'[^'\n]+'|[^\s\"',;&<>=\\][^\s\"',;&<>\\]*)",
        accept=_not_a_common_value,
    ),
    # YAML-style "name: X / value: SECRET" pairs (Kubernetes env lists, CI variables).
    _rule(
        "name_value_pair",
        r"(?i:name:[ \t]*\\?[\"']?[A-Za-z0-9_]*(?:password|passwd|secret|token|api_?key|auth|"
        r"credential|private_?key|dsn|webhook)[A-Za-z0-9_]*\\?[\"']?[ \t]*\r?\n[ \t]*-?[ \t]*)"
        r"(?P<keep>value:[ \t]*)(?P<value>\S+)",
        flags=re.ASCII,
    ),
    # Prose: "the admin password is X", "wifi pass: X", "the recovery code is X".
    _rule(
        "prose_password",
        r"(?P<keep>(?i:\b(?:pass(?:word|phrase|code|wd)?|pwd|recovery[ \t]+codes?"
        r"|backup[ \t]+codes?"
        r"|pin[ \t]+code)\b)(?:[ \t]+(?:is|was|=|would[ \t]+be)[ \t]*:?|[ \t]*[:=])[ \t]*)"
        r"(?P<value>\\?[\"'`]?[^\s\"'`,;()]+?)(?=\\?[\"'`]?[.,;:!?)]*(?:[\s\"'`\\]|\Z))",
        accept=_plausible_password,
    ),
    # Prose: "login is admin / X", "credentials: admin/X".
    _rule(
        "prose_login_pair",
        r"(?i:\b(?:login|credentials?|creds|user(?:name)?[ \t]*/[ \t]*pass(?:word)?)\b)"
        + _GAP.format(20)
        + r"(?:\bis\b|\bare\b|:|=)[ \t]*[^\s/]+[ \t]*/[ \t]*"
        r"(?P<value>[^\s,;()]+?)(?=[.,;:!?)]*(?:\s|\Z))",
        accept=_plausible_password,
    ),
    # A provider's name as the key ("cohere: …", MISTRAL=…) and a random-looking value.
    _rule(
        "provider_key_value",
        r"(?i:\b(?:" + _PROVIDERS + r")\b)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
        r"(?P<value>[A-Za-z0-9+/_=-]{20,})(?![A-Za-z0-9+/_=-])",
        accept=looks_random,
        cap=20,
    ),
    # No known shape: a random-looking string within a few words after a context word.
    _rule(
        "contextual_random",
        _CONTEXT_WORD + _GAP.format(40) + r"(?<![A-Za-z0-9+/_=-])"
        r"(?P<value>(?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Za-z])"
        r"[A-Za-z0-9+/_=-]{20,})(?![A-Za-z0-9+/_=-])",
        finder=contextual_random,
        screen=widen(_CONTEXT_WORD) + _CANDIDATE_SCREEN,
        screen_pg=widen(_CONTEXT_WORD, dialect="pg") + _CANDIDATE_SCREEN,
    ),
)
