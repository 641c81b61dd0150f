"""A corpus of planted credentials in the forms agent data holds them, and a clean corpus.

Every secret is built at run time from a seeded generator, so this source holds no string that a
secret scanner would take for a real key. Each ``Case`` is one text of one context (prose, an
``.env`` file, YAML, JSON, HTTP headers, a command line, a tool call's JSON-escaped arguments, a
URL-encoded query string) holding one credential of one kind; the tests check that no part of the
credential survives redaction, at every level, in every interface.

``CLEAN`` holds realistic text with no credential in it (code, git output, checksums, UUIDs, model
ids, paths, URLs); ``LOOK_ALIKES`` are the texts among them that must come out exactly unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass

_RNG = random.Random(20_261_202)
LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
ALNUM = string.ascii_letters + DIGITS
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"


def chars(n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters of ``alphabet``, with a digit and a letter where the alphabet has
    them (as real keys have)."""
    body = [_RNG.choice(alphabet) for _ in range(n)]
    if n >= 4:
        digits = [c for c in alphabet if c.isdigit()]
        letters = [c for c in alphabet if c.isalpha()]
        if digits:
            body[_RNG.randrange(n // 2)] = _RNG.choice(digits)
        if letters:
            body[n // 2 + _RNG.randrange(n - n // 2)] = _RNG.choice(letters)
    return "".join(body)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _password() -> str:
    """A human-made password: a word, digits and a symbol."""
    word = _RNG.choice(["Sunset", "Harbor", "Maple", "Orbit", "Falcon", "Copper", "Willow"])
    return (
        f"{word}{_RNG.randrange(10, 99)}{_RNG.choice('!#%*')}{_RNG.choice(['tide', 'gate', 'Q'])}"
    )


def _pem(kind: str) -> str:
    body = "\n".join(chars(64, B64) for _ in range(4)) + "\n" + chars(20, B64) + "=="
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _discord_bot() -> str:
    user_id = str(_RNG.randrange(10**17, 10**18))
    first = base64.b64encode(user_id.encode()).decode().rstrip("=")
    return f"{first}.{chars(6, B64URL)}.{chars(38, B64URL)}"


def _docker_auth() -> str:
    return _b64(f"ci-bot:{_password()}".encode())


def _dockerconfigjson() -> str:
    auths = {"auths": {"registry.example.com": {"auth": _docker_auth()}}}
    return _b64(json.dumps(auths).encode())


def _putty() -> str:
    private = "\n".join(chars(64, B64) for _ in range(3))
    return private


# kind -> (variable name, secret maker). The variable name is how .env / YAML / JSON files name it.
KINDS: dict[str, tuple[str, Callable[[], str]]] = {
    "openai-project": ("OPENAI_API_KEY", lambda: "sk-proj-" + chars(64, B64URL)),
    "openai-legacy": ("OPENAI_KEY", lambda: "sk-" + chars(20) + "T3BlbkFJ" + chars(20)),
    "anthropic": ("ANTHROPIC_API_KEY", lambda: "sk-ant-api03-" + chars(93, B64URL) + "AA"),
    "openrouter": ("OPENROUTER_API_KEY", lambda: "sk-or-v1-" + chars(64, HEX)),
    "deepseek": ("DEEPSEEK_API_KEY", lambda: "sk-" + chars(32, HEX)),
    "groq": ("GROQ_API_KEY", lambda: "gsk_" + chars(20) + "WGdyb3FY" + chars(24)),
    "xai": ("XAI_API_KEY", lambda: "xai-" + chars(80)),
    "perplexity": ("PERPLEXITY_API_KEY", lambda: "pplx-" + chars(48)),
    "replicate": ("REPLICATE_API_TOKEN", lambda: "r8_" + chars(37)),
    "together": ("TOGETHER_API_KEY", lambda: "tgp_v1_" + chars(43, B64URL)),
    "hugging-face": ("HF_TOKEN", lambda: "hf_" + chars(34, string.ascii_letters)),
    "mistral": ("MISTRAL_API_KEY", lambda: chars(32)),
    "cohere": ("COHERE_API_KEY", lambda: chars(40)),
    "google-api-key": ("GOOGLE_API_KEY", lambda: "AIza" + chars(35, B64URL)),
    "google-oauth-secret": ("GOOGLE_CLIENT_SECRET", lambda: "GOCSPX-" + chars(28, B64URL)),
    "google-oauth-token": ("GOOGLE_ACCESS_TOKEN", lambda: "ya29." + chars(60, B64URL)),
    "gcp-private-key-id": ("private_key_id", lambda: chars(40, HEX)),
    "aws-access-key-id": ("AWS_ACCESS_KEY_ID", lambda: "AKIA" + chars(16, UPPER + DIGITS)),
    "aws-secret-access-key": ("AWS_SECRET_ACCESS_KEY", lambda: chars(40, B64)),
    "github-classic": ("GITHUB_TOKEN", lambda: "ghp_" + chars(36)),
    "github-oauth": ("GH_OAUTH_TOKEN", lambda: "gho_" + chars(36)),
    "github-fine-grained": ("GH_PAT", lambda: "github_pat_" + chars(22) + "_" + chars(59)),
    "gitlab": ("GITLAB_TOKEN", lambda: "glpat-" + chars(20, B64URL)),
    "npm": ("NPM_TOKEN", lambda: "npm_" + chars(36)),
    "pypi": ("PYPI_TOKEN", lambda: "pypi-AgEIcHlwaS5vcmc" + chars(160, B64URL)),
    "docker-hub-pat": ("DOCKERHUB_TOKEN", lambda: "dckr_pat_" + chars(27, B64URL)),
    "docker-config-auth": ("auth", _docker_auth),
    "dockerconfigjson": (".dockerconfigjson", _dockerconfigjson),
    "slack-bot": (
        "SLACK_BOT_TOKEN",
        lambda: f"xoxb-{chars(12, DIGITS)}-{chars(13, DIGITS)}-{chars(24)}",
    ),
    "slack-webhook": (
        "SLACK_WEBHOOK_URL",
        lambda: (
            f"https://hooks.slack.com/services/T{chars(10, UPPER + DIGITS)}/"
            f"B{chars(10, UPPER + DIGITS)}/{chars(24)}"
        ),
    ),
    "discord-webhook": (
        "DISCORD_WEBHOOK",
        lambda: f"https://discord.com/api/webhooks/{chars(18, DIGITS)}/{chars(68, B64URL)}",
    ),
    "discord-bot": ("DISCORD_BOT_TOKEN", _discord_bot),
    "telegram-bot": (
        "TELEGRAM_BOT_TOKEN",
        lambda: f"{chars(10, DIGITS)}:AA{chars(33, B64URL)}",
    ),
    "stripe-secret": ("STRIPE_SECRET_KEY", lambda: "sk_" + "live_" + chars(24)),
    "stripe-restricted": ("STRIPE_RESTRICTED_KEY", lambda: "rk_" + "live_" + chars(24)),
    "stripe-webhook": ("STRIPE_WEBHOOK_SECRET", lambda: "whsec_" + chars(32)),
    "square-access": ("SQUARE_ACCESS_TOKEN", lambda: "EAAA" + chars(60, B64URL)),
    "square-oauth": ("SQUARE_OAUTH_SECRET", lambda: "sq0csp-" + chars(43, B64URL)),
    "twilio-auth-token": ("TWILIO_AUTH_TOKEN", lambda: chars(32, HEX)),
    "twilio-api-key": ("TWILIO_API_KEY", lambda: "SK" + chars(32, HEX)),
    "sendgrid": ("SENDGRID_API_KEY", lambda: f"SG.{chars(22, B64URL)}.{chars(43, B64URL)}"),
    "mailgun": ("MAILGUN_API_KEY", lambda: "key-" + chars(32, LOWER + DIGITS)),
    "mailchimp": ("MAILCHIMP_API_KEY", lambda: chars(32, HEX) + "-us12"),
    "sentry-dsn": (
        "SENTRY_DSN",
        lambda: f"https://{chars(32, HEX)}@o{chars(6, DIGITS)}.ingest.sentry.io/{chars(7, DIGITS)}",
    ),
    "sentry-user-token": ("SENTRY_AUTH_TOKEN", lambda: "sntryu_" + chars(64, HEX)),
    "datadog": ("DD_API_KEY", lambda: chars(32, HEX)),
    "azure-storage": (
        "AZURE_STORAGE_CONNECTION_STRING",
        lambda: (
            "DefaultEndpointsProtocol=https;AccountName=evalstore;AccountKey="
            + chars(86, B64)
            + "==;EndpointSuffix=core.windows.net"
        ),
    ),
    "jwt": (
        "ID_TOKEN",
        lambda: (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            + base64.urlsafe_b64encode(json.dumps({"sub": chars(8)}).encode()).decode().rstrip("=")
            + "."
            + chars(43, B64URL)
        ),
    ),
    "postgres-url": (
        "DATABASE_URL",
        lambda: f"postgresql://app:{_password()}@db.internal:5432/evals",
    ),
    "redis-url": ("REDIS_URL", lambda: f"redis://:{chars(24)}@cache.internal:6379/0"),
    "vercel": ("VERCEL_TOKEN", lambda: chars(24)),
    "linear": ("LINEAR_API_KEY", lambda: "lin_api_" + chars(40)),
    "notion": ("NOTION_TOKEN", lambda: "ntn_" + chars(46)),
    "shopify": ("SHOPIFY_ACCESS_TOKEN", lambda: "shpat_" + chars(32, HEX)),
    "digitalocean": ("DIGITALOCEAN_TOKEN", lambda: "dop_v1_" + chars(64, HEX)),
    "vault": ("VAULT_TOKEN", lambda: "hvs." + chars(90, B64URL)),
    "newrelic": ("NEW_RELIC_API_KEY", lambda: "NRAK-" + chars(27, UPPER + DIGITS)),
    "postman": ("POSTMAN_API_KEY", lambda: f"PMAK-{chars(24, HEX)}-{chars(34, HEX)}"),
    "age": ("AGE_KEY", lambda: "AGE-SECRET-KEY-1" + chars(58, UPPER + DIGITS)),
    "databricks": ("DATABRICKS_TOKEN", lambda: "dapi" + chars(32, HEX)),
    "cloudflare": ("CLOUDFLARE_API_TOKEN", lambda: chars(40, B64URL)),
    "langsmith": ("LANGSMITH_API_KEY", lambda: f"lsv2_pt_{chars(32, HEX)}_{chars(10, HEX)}"),
    "supabase": ("SUPABASE_ACCESS_TOKEN", lambda: "sbp_" + chars(40, HEX)),
    "password": ("DB_PASSWORD", _password),
    "rsa-private-key": ("private_key", lambda: _pem("RSA ")),
    "openssh-private-key": ("ssh_key", lambda: _pem("OPENSSH ")),
    "putty-private-key": ("putty", _putty),
    "session-cookie": ("sessionid", lambda: chars(32, LOWER + DIGITS)),
    "basic-auth": ("basic", lambda: _b64(f"deploy:{_password()}".encode())),
    "bearer-opaque": ("bearer", lambda: chars(40, B64URL)),
}


# For secrets inside a larger value (a URL, a connection string): the part that is the secret.
_SECRET_PART: dict[str, Callable[[str], str]] = {
    "slack-webhook": lambda v: v.split("/services/", 1)[1],
    "discord-webhook": lambda v: v.split("/webhooks/", 1)[1],
    "sentry-dsn": lambda v: v.split("://", 1)[1].split("@", 1)[0],
    "azure-storage": lambda v: v.split("AccountKey=", 1)[1].split(";", 1)[0],
    "postgres-url": lambda v: v.split("app:", 1)[1].split("@", 1)[0],
    "redis-url": lambda v: v.split("://:", 1)[1].split("@", 1)[0],
}


@dataclass(frozen=True)
class Case:
    """One text holding ``secret`` (of ``kind``) in ``context``."""

    kind: str
    context: str
    text: str
    secret: str

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.context}"


def _json_escaped(content: str) -> str:
    """A tool call that writes ``content`` to a file, as its arguments are stored: JSON text."""
    return json.dumps({"path": "deploy/.env", "content": content})


def _render(kind: str, context: str, var: str, secret: str) -> str:
    lower = var.lower().lstrip(".")
    if context == "env":
        return f"# service config\nLOG_LEVEL=info\n{var}={secret}\nPORT=8080\n"
    if context == "yaml":
        return (
            f"env:\n  - name: {var}\n    value: {secret}\n  - name: REGION\n    value: eu-west-1\n"
        )
    if context == "yaml-key":
        return f"services:\n  api:\n    {lower}: {secret}\n    replicas: 2\n"
    if context == "json":
        return json.dumps({"name": "eval-runner", lower: secret, "retries": 3}, indent=2)
    if context == "json-escaped":
        return _json_escaped(f"DEBUG=false\n{var}={secret}\nREGION=eu-west-1\n")
    if context == "url-encoded":
        quoted = urllib.parse.quote(secret, safe="")
        return f"GET /oauth/callback?state=xyz&{lower}={quoted}&next=%2Fhome HTTP/1.1"
    if context == "header":
        return (
            "Request failed: 401 Unauthorized\nPOST /v1/chat/completions HTTP/1.1\n"
            f"Host: api.example.com\nX-Api-Key: {secret}\nContent-Type: application/json"
        )
    if context == "bearer-header":
        return f"curl -s https://api.example.com/v1/models -H 'Authorization: Bearer {secret}'"
    if context == "prose":
        return (
            f"Hand-over note: the {kind.replace('-', ' ')} for staging is {secret} — rotate it "
            "after the migration, and do not paste it in the channel."
        )
    if context == "export":
        return f"$ export {var}={secret} && python run_eval.py --suite hop"
    raise ValueError(context)


# Each kind in two contexts (some in more): at least 120 credentials, 60 kinds, 8 contexts.
_CONTEXTS: dict[str, tuple[str, ...]] = {
    "openai-project": ("env", "json-escaped", "bearer-header"),
    "openai-legacy": ("prose", "yaml"),
    "anthropic": ("json-escaped", "header"),
    "openrouter": ("env", "bearer-header"),
    "deepseek": ("yaml", "json-escaped"),
    "groq": ("prose", "json"),
    "xai": ("env", "url-encoded"),
    "perplexity": ("bearer-header", "json-escaped"),
    "replicate": ("export", "json"),
    "together": ("env", "prose"),
    "hugging-face": ("json-escaped", "export"),
    "mistral": ("env", "json-escaped", "yaml"),
    "cohere": ("env", "json"),
    "google-api-key": ("url-encoded", "json-escaped"),
    "google-oauth-secret": ("json", "env"),
    "google-oauth-token": ("bearer-header", "url-encoded"),
    "gcp-private-key-id": ("json", "json-escaped"),
    "aws-access-key-id": ("json-escaped", "yaml"),
    "aws-secret-access-key": ("env", "json-escaped", "prose"),
    "github-classic": ("json-escaped", "url-encoded"),
    "github-oauth": ("bearer-header", "yaml"),
    "github-fine-grained": ("env", "prose"),
    "gitlab": ("header", "json-escaped"),
    "npm": ("env", "json-escaped"),
    "pypi": ("env", "json"),
    "docker-hub-pat": ("prose", "json-escaped"),
    "docker-config-auth": ("json",),
    "dockerconfigjson": ("yaml-key",),
    "slack-bot": ("env", "bearer-header"),
    "slack-webhook": ("json-escaped", "prose"),
    "discord-webhook": ("env", "json-escaped"),
    "discord-bot": ("env", "json"),
    "telegram-bot": ("env", "url-encoded"),
    "stripe-secret": ("json-escaped", "bearer-header"),
    "stripe-restricted": ("env", "yaml"),
    "stripe-webhook": ("env", "json-escaped"),
    "square-access": ("bearer-header", "env"),
    "square-oauth": ("json", "env"),
    "twilio-auth-token": ("env", "json-escaped", "prose"),
    "twilio-api-key": ("env", "yaml"),
    "sendgrid": ("json-escaped", "bearer-header"),
    "mailgun": ("env", "url-encoded"),
    "mailchimp": ("json", "env"),
    "sentry-dsn": ("env", "json-escaped"),
    "sentry-user-token": ("bearer-header", "env"),
    "datadog": ("env", "header"),
    "azure-storage": ("env", "json"),
    "jwt": ("bearer-header", "url-encoded"),
    "postgres-url": ("env", "json-escaped", "prose"),
    "redis-url": ("yaml", "env"),
    "vercel": ("env", "json-escaped"),
    "linear": ("header", "env"),
    "notion": ("bearer-header", "json"),
    "shopify": ("env", "header"),
    "digitalocean": ("env", "bearer-header"),
    "vault": ("env", "header"),
    "newrelic": ("env", "header"),
    "postman": ("header", "env"),
    "age": ("env", "prose"),
    "databricks": ("bearer-header", "env"),
    "cloudflare": ("env", "bearer-header"),
    "langsmith": ("env", "json-escaped"),
    "supabase": ("env", "json"),
    "password": ("env", "json-escaped", "url-encoded", "yaml"),
    "bearer-opaque": ("bearer-header",),
}


def _special_cases() -> list[Case]:
    """Credentials that only their context names: command lines, prose, headers, key files."""
    cases: list[Case] = []

    def add(kind: str, context: str, text: str, secret: str) -> None:
        cases.append(Case(kind, context, text, secret))

    pw = _password()
    add("curl-user", "command", f"curl -u deploy:{pw} https://ci.example.com/api/json", pw)
    pw = _password()
    add("mysql-p", "command", f"mysql -h db.internal -u root -p{pw} evals < dump.sql", pw)
    pw = _password()
    add("sshpass", "command", f"sshpass -p '{pw}' ssh ops@bastion.internal uptime", pw)
    pw = _password()
    add("redis-cli", "command", f"redis-cli -h cache.internal -a {pw} FLUSHALL", pw)
    pw = _password()
    add("twine", "command", f"twine upload -u uploader -p {pw} dist/*", pw)
    pw = _password()
    add("docker-login", "command", f"docker login -u ci-bot -p {pw} registry.example.com", pw)
    pw = _password()
    add(
        "command-json-escaped",
        "json-escaped",
        json.dumps({"command": f"sshpass -p {pw} scp build.tar ops@10.0.0.5:/srv"}),
        pw,
    )
    pw = _password()
    add("admin-password-prose", "prose", f"FYI the admin password is {pw} until Friday.", pw)
    pw = _password()
    add("login-pair-prose", "prose", f"Staging login is admin / {pw} (shared account).", pw)
    pw = _password()
    add("wifi-prose", "prose", f"Office notes: wifi pass: {pw}, guest network on floor 2.", pw)
    code = f"{chars(4, LOWER + DIGITS)}-{chars(4, LOWER + DIGITS)}-{chars(4, LOWER + DIGITS)}"
    add(
        "recovery-code-prose", "prose", f"If you get locked out, the recovery code is {code}.", code
    )
    token = chars(32, HEX)
    add(
        "twilio-auth-prose",
        "prose",
        f"Twilio auth token {token} belongs to the eval account.",
        token,
    )
    key = chars(32)
    add("mistral-named", "prose", f"mistral key: {key} (the team one)", key)
    key = chars(40)
    add("cohere-named", "yaml", f"providers:\n  cohere: {key}\n  local: ollama\n", key)
    token = chars(24)
    add("vercel-named", "prose", f"vercel token {token} is for preview deploys", token)
    secret = chars(40, B64)
    add("aws-secret-alone", "prose", f"the aws secret is {secret} (key id in the vault)", secret)
    sid = chars(32, LOWER + DIGITS)
    add(
        "cookie-header",
        "header",
        f"GET /admin HTTP/1.1\nHost: app.example.com\nCookie: csrftoken=abc; sessionid={sid}",
        sid,
    )
    bot = _discord_bot()
    add(
        "discord-bot-header",
        "header",
        f"POST /api/v10/channels/1/messages\nAuthorization: Bot {bot}\nUser-Agent: DiscordBot",
        bot,
    )
    basic = _b64(f"deploy:{_password()}".encode())
    add("basic-header", "header", f"Authorization: Basic {basic}\nAccept: */*", basic)
    private = _putty()
    add(
        "putty-key",
        "key-file",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ops\nPublic-Lines: 2\n"
        f"{chars(64, B64)}\n{chars(20, B64)}\nPrivate-Lines: 3\n{private}\n"
        f"Private-MAC: {chars(64, HEX)}\n",
        private,
    )
    pkid = chars(40, HEX)
    pem = _pem("")
    account = {
        "type": "service_account",
        "project_id": "eval-prod",
        "private_key_id": pkid,
        "private_key": pem + "\n",
        "client_email": "runner@eval-prod.iam.gserviceaccount.com",
    }
    add("service-account-key-id", "json", json.dumps(account, indent=2), pkid)
    add("service-account-private-key", "json", json.dumps(account, indent=2), pem)
    pw = _password()
    add(
        "password-unicode-escaped",
        "json-escaped",
        json.dumps({"content": f"db:\n  password: {pw}\n"}, ensure_ascii=True).replace(
            "password", "\\u0070assword"
        ),
        pw,
    )
    pw = _password()
    add(
        "ci-yaml",
        "yaml",
        f"jobs:\n  deploy:\n    steps:\n      - run: ./deploy.sh\n        env:\n"
        f"          DEPLOY_PASSWORD: {pw}\n",
        pw,
    )
    return cases


def build_corpus() -> list[Case]:
    """Every planted credential, each in its contexts."""
    cases: list[Case] = []
    for kind, contexts in _CONTEXTS.items():
        var, make = KINDS[kind]
        for context in contexts:
            value = make()
            secret = _SECRET_PART.get(kind, lambda v: v)(value)
            cases.append(Case(kind, context, _render(kind, context, var, value), secret))
    for kind in ("rsa-private-key", "openssh-private-key"):
        pem = KINDS[kind][1]()
        cases.append(Case(kind, "json-escaped", _json_escaped(f"KEY=1\n{pem}\n"), pem))
        pem = KINDS[kind][1]()
        cases.append(Case(kind, "prose", f"Here is the deploy key:\n{pem}\nKeep it safe.", pem))
    sid = KINDS["session-cookie"][1]()
    header = f"HTTP/1.1 302 Found\nSet-Cookie: sessionid={sid}; Path=/; HttpOnly"
    cases.append(Case("session-cookie", "header", header, sid))
    sid = KINDS["session-cookie"][1]()
    header = f"HTTP/1.1 302 Found\nSet-Cookie: sessionid={sid}; Path=/; HttpOnly"
    cases.append(Case("session-cookie", "json-escaped", json.dumps({"headers": header}), sid))
    cases.extend(_special_cases())
    return cases


CORPUS = build_corpus()


def fragments(secret: str, size: int = 12) -> list[str]:
    """The pieces of ``secret`` that must not survive: every run of ``size`` characters of its
    random part (whole secrets shorter than that)."""
    if len(secret) <= size:
        return [secret]
    return [secret[i : i + size] for i in range(0, len(secret) - size + 1)]


def leaked(case: Case, output: str) -> list[str]:
    """The parts of ``case.secret`` still readable in ``output``, in any encoding the text used."""
    found: list[str] = []
    forms = {output, urllib.parse.unquote(output)}
    try:
        decoded = json.loads(output)
        forms.add(json.dumps(decoded, ensure_ascii=False))
        forms.add(str(decoded))
    except (ValueError, TypeError):
        pass
    background = case.text
    for form in (case.secret, json.dumps(case.secret)[1:-1], urllib.parse.quote(case.secret, "")):
        background = background.replace(form, "")
    for line in case.secret.splitlines() or [case.secret]:
        if len(line) < 6:
            continue
        for piece in fragments(line):
            if any(piece in form for form in forms) and piece not in background:
                found.append(piece)
                break
    return found


# --- the clean corpus --------------------------------------------------------------------------


def _git_log() -> str:
    lines = []
    for _ in range(4):
        sha = hashlib.sha1(chars(20).encode()).hexdigest()
        lines.append(f"commit {sha}\nAuthor: CI <ci@example.invalid>\n\n    fix: retry on 429\n")
    return "\n".join(lines)


def _checksums() -> str:
    names = ["nano_agent-0.3.1-py3-none-any.whl", "results.tar.gz", "model.gguf", "data.parquet"]
    return "\n".join(f"{hashlib.sha256(n.encode()).hexdigest()}  {n}" for n in names)


def _uuids() -> str:
    ids = [str(uuid.UUID(int=_RNG.getrandbits(128))) for _ in range(3)]
    return f"Created runs {ids[0]}, {ids[1]} and {ids[2]} (request id {ids[0]})."


LOOK_ALIKES: tuple[str, ...] = (
    "from sklearn.model_selection import train_test_split  # sk-learn, not a key",
    "The key points: latency improved, token count fell to 512, and the risk-free rate held.",
    "def get_api_key(name: str) -> str:\n    return os.environ[name]",
    'api_key = os.environ["OPENAI_API_KEY"]',
    "password = getpass.getpass('Password: ')",
    "Set OPENAI_API_KEY in your environment, then run `make run`.",
    "git clone https://github.com/disler/nano-agent.git && cd nano-agent",
    "Pushed to git@github.com:org/repo.git (branch feature/token-budget).",
    "See https://docs.python.org/3/library/secrets.html#module-secrets for token_hex().",
    "Model ids: gpt-5-mini, claude-opus-4-1-20250805, gpt-oss:20b, qwen3:30b-a3b.",
    "Wrote /tmp/eval/output/report.md and ./results/eval_results_3_file_operations_test.md",
    "HTTP/1.1 200 OK\nContent-Type: application/json\nX-Request-Id: 5f2b7c1e9a",
    "The password reset flow emails a link; the token expires after 15 minutes.",
    "sudo systemctl restart postgresql  # NOPASSWD: ALL for the ops group",
    "Use `--password-stdin` to read the password from standard input.",
    "Docker image sha256:" + hashlib.sha256(b"image").hexdigest(),
    "http://localhost:5173/@vite/client and http://[::1]:8080/pkg@2",
    "MAXTOKENS=512 TEMPERATURE=0.2 TOP_P=0.9",
    "Tests: 42 passed, 0 failed in 3.21s",
    "Base model: meta-llama/Llama-3.1-8B-Instruct; adapter: ./lora/checkpoint-500",
    "The function returns a 16-character hex digest, for example 9f86d081884c7d65.",
    "Run `export PATH=$HOME/.local/bin:$PATH` and retry.",
)


def clean_corpus() -> list[str]:
    """Realistic agent text with no credential: code, tool output, ids, paths and URLs."""
    texts = list(LOOK_ALIKES)
    for _ in range(5):
        texts.append(_git_log())
        texts.append(_checksums())
        texts.append(_uuids())
    texts.append(
        "```python\nimport hashlib\n\ndef digest(path: str) -> str:\n"
        "    with open(path, 'rb') as f:\n        return hashlib.sha256(f.read()).hexdigest()\n```"
    )
    texts.append(
        json.dumps(
            {
                "tool": "read_file",
                "arguments": {"path": "src/nano_agent/modules/constants.py"},
                "result": 'DEFAULT_MODEL = "gpt-5-mini"\nMAX_TURNS = 20\n',
            }
        )
    )
    texts.append(
        "Fetched https://api.github.com/repos/disler/nano-agent/commits?per_page=5&page=2 "
        "and https://pypi.org/project/nano-agent/#history"
    )
    return texts
