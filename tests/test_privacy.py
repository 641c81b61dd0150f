"""The privacy policy: credentials, personal data, hashing, levels and roles.

Secrets below are built at run time from a seeded generator, so the source holds no string that a
secret scanner would take for a real key (the AWS id is AWS's documented example).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import subprocess
import sys
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nano_export import privacy
from nano_export.datasets import FREE_TEXT, IDENTITY
from nano_export.errors import BadInput, InvalidSetting, PermissionDenied
from nano_export.models import ALLOWED_LEVELS, PRIVACY_LEVELS, ROLES
from nano_export.privacy import (
    REDACTED,
    apply_policy,
    check_level,
    columns_for_level,
    mask_personal,
    policy,
    redact_credentials,
    stable_hash,
)
from nano_export.typedcells import arrow_texts

SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"
_RNG = random.Random(20_251_127)
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
LETTERS_28 = "".join(_RNG.choice(string.ascii_letters) for _ in range(28))  # no digit at all


def _chars(n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters with at least one digit (as real keys have)."""
    body = [_RNG.choice(alphabet) for _ in range(n - 1)]
    body.insert(_RNG.randrange(n), _RNG.choice(string.digits))
    return "".join(body)


def _b64url(data: dict[str, Any] | bytes) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


JWT = ".".join(
    [
        _b64url({"alg": "HS256", "typ": "JWT"}),
        _b64url({"sub": "1234567890", "name": "Alice", "iat": 1516239022}),
        _b64url(bytes(_RNG.randrange(256) for _ in range(32))),
    ]
)
PEM_BODY = "\n".join(_chars(64, ALNUM + "+/") for _ in range(5))
PRIVATE_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
OPENSSH_KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----"

# (kind, secret as it appears in text). Each is embedded in a sentence and must vanish whole.
TOKENS: list[tuple[str, str]] = [
    ("openai-legacy", "sk-" + _chars(48)),
    ("openai-project", "sk-proj-" + _chars(120, B64URL)),
    ("openai-service-account", "sk-svcacct-" + _chars(64, B64URL)),
    ("anthropic", "sk-ant-api03-" + _chars(93, B64URL) + "AA"),
    ("stripe", "sk_" + "live_" + _chars(24)),
    ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE"),
    ("aws-session-key-id", "ASIA" + _chars(16, string.ascii_uppercase + string.digits)),
    ("github-ghp", "gh" + "p_" + _chars(36)),
    ("github-gho", "gh" + "o_" + _chars(36)),
    ("github-ghu", "gh" + "u_" + _chars(36)),
    ("github-ghs", "gh" + "s_" + _chars(36)),
    ("github-ghr", "gh" + "r_" + _chars(36)),
    ("github-fine-grained", "github_" + "pat_" + _chars(22) + "_" + _chars(59)),
    ("slack-bot", "xo" + "xb-" + _chars(12, string.digits) + "-" + _chars(24)),
    ("slack-user", "xo" + "xp-" + _chars(12, string.digits) + "-" + _chars(32)),
    ("slack-legacy", "xo" + "xa-2-" + _chars(12, string.digits) + "-" + _chars(24)),
    ("slack-app", "xa" + "pp-1-A" + _chars(10) + "-" + _chars(13, string.digits)),
    ("google-api-key", "AI" + "za" + _chars(35, B64URL)),
    ("hugging-face", "hf" + "_" + _chars(34)),
    ("jwt", JWT),
    ("private-key-rsa", PRIVATE_KEY),
    ("private-key-openssh", OPENSSH_KEY),
    ("gitlab-pat", "gl" + "pat-" + _chars(20, B64URL)),
    ("gitlab-pat-long", "gl" + "pat-" + _chars(36, B64URL)),
    ("gitlab-pat-dotted", "gl" + "pat-" + _chars(27, B64URL) + ".01." + _chars(9)),
    ("gitlab-deploy-token", "gl" + "dt-" + _chars(20, B64URL)),
    ("gitlab-runner-token", "gl" + "rt-" + _chars(20, B64URL)),
    ("gitlab-ci-job-token", "gl" + "cbt-" + _chars(24, B64URL)),
    ("npm", "np" + "m_" + _chars(36)),
    ("openai-project-letters-only", "sk-" + "proj-" + LETTERS_28),
    ("openai-admin", "sk-" + "admin-" + _chars(64, B64URL)),
    ("google-oauth-access-token", "ya" + "29." + _chars(80, B64URL)),
]

# (kind, text, expected): credentials in context keep their context.
IN_CONTEXT: list[tuple[str, str, str]] = [
    (
        "aws-key-pair-on-one-line",
        "AWS creds: AKIA"
        + (kid := _chars(16, string.ascii_uppercase + string.digits))
        + " / "
        + (pair_secret := _chars(40, ALNUM + "/+"))
        + " (rotate monthly)",
        "AWS creds: [REDACTED] / [REDACTED] (rotate monthly)",
    ),
    (
        "aws-key-pair-as-csv",
        f"ASIA{kid},{pair_secret}\nnext line keeps 1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
        "[REDACTED],[REDACTED]\nnext line keeps 1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
    ),
    (
        "aws-secret-access-key",
        "aws_secret_access_key = " + (aws := _chars(40, ALNUM + "/+")),
        "aws_secret_access_key = [REDACTED]",
    ),
    ("aws-secret-env", f"AWS_SECRET_ACCESS_KEY={aws}", "AWS_SECRET_ACCESS_KEY=[REDACTED]"),
    ("aws-secret-json", f'"SecretAccessKey": "{aws}"', '"SecretAccessKey": "[REDACTED]"'),
    ("authorization-bearer", "Authorization: Bearer xyz", "Authorization: Bearer [REDACTED]"),
    (
        "authorization-basic",
        "curl -H 'Authorization: Basic dXNlcjpwYXNz' https://api.example.com",
        "curl -H 'Authorization: Basic [REDACTED]' https://api.example.com",
    ),
    (
        "authorization-lowercase",
        '{"authorization": "bearer abc.def"}',
        '{"authorization": "bearer [REDACTED]"}',
    ),
    ("bearer-bare", "use Bearer 9f8e7d6c5b4a3 here", "use Bearer [REDACTED] here"),
    (
        "bearer-long",
        "sent Bearer abcdefghijklmnopqrstuvwxyz now",
        "sent Bearer [REDACTED] now",
    ),
    (
        "url-password",
        "connect to postgresql://admin:s3cr3t@db.internal:5432/prod now",
        "connect to postgresql://admin:[REDACTED]@db.internal:5432/prod now",
    ),
    (
        "url-password-no-user",
        "redis://:hunter2@cache.local:6379/0",
        "redis://:[REDACTED]@cache.local:6379/0",
    ),
    (
        "slack-webhook",
        "post to https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/" + _chars(24) + " daily",
        "post to https://hooks.slack.com/services/[REDACTED] daily",
    ),
    (
        "password-equals",
        "login with password=hunter2 please",
        "login with password=[REDACTED] please",
    ),
    ("password-capitalised", "Password: hunter2", "Password: [REDACTED]"),
    ("passwd-colon", "passwd: hunter2\nnext line", "passwd: [REDACTED]\nnext line"),
    ("pwd-equals", "pwd=hunter2;x=1", "pwd=[REDACTED];x=1"),
    ("secret-equals", "secret=abc123 rest", "secret=[REDACTED] rest"),
    ("api-key-query", "GET /v1?api_key=abc123&page=2", "GET /v1?api_key=[REDACTED]&page=2"),
    ("api-key-header", "X-Api-Key: abc123", "X-Api-Key: [REDACTED]"),
    ("token-equals", "token=abc123", "token=[REDACTED]"),
    ("access-token", "access_token: 'a b c'", "access_token: '[REDACTED]'"),
    ("client-secret", "client_secret = 'p@ss'", "client_secret = '[REDACTED]'"),
    ("db-password-env", "DB_PASSWORD=correct-horse", "DB_PASSWORD=[REDACTED]"),
    (
        "json-password",
        '{"user": "bob", "password": "it\'s secret"}',
        '{"user": "bob", "password": "[REDACTED]"}',
    ),
    (
        "escaped-json-api-key",
        '{\\"api_key\\": \\"abc123\\", \\"n\\": 1}',
        '{\\"api_key\\": \\"[REDACTED]\\", \\"n\\": 1}',
    ),
    (
        "token-then-bearer",
        "token: Bearer abc123def456",
        "token: [REDACTED] [REDACTED]",
    ),
    (
        "truncated-private-key",
        "key follows\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "key follows\n[REDACTED]",
    ),
    # camelCase and other key spellings of JSON tool arguments and results.
    (
        "json-camel-db-password",
        '{"dbPassword": "hunter2-Correct"}',
        '{"dbPassword": "[REDACTED]"}',
    ),
    (
        "json-camel-access-token",
        '{"accessToken": "ya' + '29.a0AfH6SMB", "expiresIn": 3599}',
        '{"accessToken": "[REDACTED]", "expiresIn": 3599}',
    ),
    ("json-camel-client-secret", '{"clientSecret": "Zk8sQ"}', '{"clientSecret": "[REDACTED]"}'),
    (
        "json-camel-refresh-token",
        '{"refreshToken":"1//0gXyZ","tokenType":"Bearer"}',
        '{"refreshToken":"[REDACTED]","tokenType":"Bearer"}',
    ),
    ("json-camel-private-key", '"privateKey": "MC4CAQAw"', '"privateKey": "[REDACTED]"'),
    ("json-camel-api-key", '{"apiKey": "abc123"}', '{"apiKey": "[REDACTED]"}'),
    ("json-snake-api-key", '{"api_key": "abc123"}', '{"api_key": "[REDACTED]"}'),
    (
        "json-snake-client-secret",
        '{"client_id": "app", "client_secret": "Zk8sQ"}',
        '{"client_id": "app", "client_secret": "[REDACTED]"}',
    ),
    ("json-azure-account-key", '"accountKey": "Zm9vYmFy"', '"accountKey": "[REDACTED]"'),
    ("js-object-camel-key", "{ apiKey: 'abc123' }", "{ apiKey: '[REDACTED]' }"),
    ("upper-camel-key", "DBPassword=hunter2", "DBPassword=[REDACTED]"),
    # Upper-case keys glued to a prefix (environment variables without a separator).
    ("upper-glued-password", "DBPASSWORD=hunter2", "DBPASSWORD=[REDACTED]"),
    ("upper-glued-secret", "export APPSECRET=Zk8sQ", "export APPSECRET=[REDACTED]"),
    ("upper-glued-token", "GITHUBTOKEN: abc123\nnext", "GITHUBTOKEN: [REDACTED]\nnext"),
    ("upper-glued-json", '{"MYSQLPWD": "hunter2"}', '{"MYSQLPWD": "[REDACTED]"}'),
    ("pascal-key", "ClientSecret: Zk8sQ", "ClientSecret: [REDACTED]"),
    (
        "npmrc-auth-token",
        "//registry.npmjs.org/:_authToken=abc-123",
        "//registry.npmjs.org/:_authToken=[REDACTED]",
    ),
    ("x-api-key-header", "x-api-key: abc123def", "x-api-key: [REDACTED]"),
    (
        "x-api-key-curl",
        "curl -H 'x-api-key: abc123def' https://api.example.com",
        "curl -H 'x-api-key: [REDACTED]' https://api.example.com",
    ),
    # GitLab and npm tokens, also behind an environment variable.
    ("gitlab-remote", f"remote: {(glpat := 'gl' + 'pat-' + _chars(20))}", "remote: [REDACTED]"),
    ("gitlab-env", f"GITLAB_TOKEN={glpat}", "GITLAB_TOKEN=[REDACTED]"),
    (
        "gitlab-clone-url",
        f"git clone https://oauth2:{glpat}@gitlab.com/group/repo.git",
        "git clone https://oauth2:[REDACTED]@gitlab.com/group/repo.git",
    ),
    ("npm-env", f"NPM_TOKEN={(npm := 'np' + 'm_' + _chars(36))}", "NPM_TOKEN=[REDACTED]"),
    (
        "npmrc-npm-token",
        f"//registry.npmjs.org/:_authToken={npm}\n",
        "//registry.npmjs.org/:_authToken=[REDACTED]\n",
    ),
    # URL passwords that contain '@': everything up to the last '@' before the host.
    (
        "url-password-with-at",
        "postgres://app:p@ssw0rd@db.internal/x",
        "postgres://app:[REDACTED]@db.internal/x",
    ),
    (
        "url-password-with-several-at",
        "mongodb://u:a@b@c@host:27017/db?authSource=admin",
        "mongodb://u:[REDACTED]@host:27017/db?authSource=admin",
    ),
    (
        "url-password-without-path",
        "redis://:p@ss@cache.local",
        "redis://:[REDACTED]@cache.local",
    ),
    (
        "url-user-with-at",
        "postgres://admin@srv:pw@srv.postgres.database.azure.com:5432/db",
        "postgres://admin@srv:[REDACTED]@srv.postgres.database.azure.com:5432/db",
    ),
    (
        "url-password-then-email-in-query",
        "https://u:pw@host?to=a@b.io",
        "https://u:[REDACTED]@host?to=a@b.io",
    ),
    (
        "url-password-compact-json",
        '{"url":"redis://:pw@cache","mail":"a@b.io"}',
        '{"url":"redis://:[REDACTED]@cache","mail":"a@b.io"}',
    ),
    ("url-password-with-quote", 'x://u:pa"ss@host', "x://u:[REDACTED]@host"),
    # URL passwords that contain '/' (not a port before the first '/'): up to the '@' before the
    # host, and never into the path.
    (
        "url-password-with-slash",
        "postgres://app:pa/ss@db.example.com:5432/x",
        "postgres://app:[REDACTED]@db.example.com:5432/x",
    ),
    (
        "url-password-with-slash-https",
        "https://user:abc/def@host/",
        "https://user:[REDACTED]@host/",
    ),
    (
        "url-password-with-slash-and-at",
        "redis://:a/b@c@cache.local:6379/0",
        "redis://:[REDACTED]@cache.local:6379/0",
    ),
    (
        "url-password-with-slash-then-at-in-path",
        "see https://u:9x/y@host/releases/@latest now",
        "see https://u:[REDACTED]@host/releases/@latest now",
    ),
    # Azure storage and service-bus connection strings, SAS tokens.
    (
        "azure-storage-connection-string",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey="
        + (azure := base64.b64encode(bytes(_RNG.randrange(256) for _ in range(64))).decode())
        + ";EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=[REDACTED]"
        ";EndpointSuffix=core.windows.net",
    ),
    (
        "azure-service-bus-connection-string",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={azure}",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=[REDACTED]",
    ),
    (
        "azure-sas-connection-string",
        "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b"
        f"&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&sig={(sig := _chars(43, ALNUM + '%'))}%3D",
        "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=[REDACTED]",
    ),
    (
        "azure-sas-url",
        f"GET https://x.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sp=r&sig={sig}%3D done",
        "GET https://x.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sp=r&sig=[REDACTED] done",
    ),
    # Command-line passwords and tokens.
    (
        "cli-password-space",
        "mysql -u root --password hunter2Secret -h db",
        "mysql -u root --password [REDACTED] -h db",
    ),
    (
        "cli-password-equals",
        "mysql -u root --password=hunter2Secret -h db",
        "mysql -u root --password=[REDACTED] -h db",
    ),
    (
        "cli-mysql-short-p",
        "mysql -uroot -pHunter2Secret mydb",
        "mysql -uroot -p[REDACTED] mydb",
    ),
    (
        "cli-mysqldump-short-p",
        "mysqldump -h db -pHunter2Secret --all-databases > all.sql",
        "mysqldump -h db -p[REDACTED] --all-databases > all.sql",
    ),
    (
        "cli-docker-login",
        "docker login -u bob --password s3cret registry.example.com",
        "docker login -u bob --password [REDACTED] registry.example.com",
    ),
    (
        "cli-quoted-client-secret",
        "az login --service-principal --client-secret 'a b' --tenant t",
        "az login --service-principal --client-secret '[REDACTED]' --tenant t",
    ),
    ("cli-api-key", "tool --api-key abc123 run", "tool --api-key [REDACTED] run"),
    (
        "cli-json-argument-list",
        '{"cmd": ["mysql", "--password", "hunter2Secret", "-h", "db"]}',
        '{"cmd": ["mysql", "--password", "[REDACTED]", "-h", "db"]}',
    ),
    (
        "cli-python-argument-list",
        "subprocess.run(['docker', 'login', '--password', 's3cret'])",
        "subprocess.run(['docker', 'login', '--password', '[REDACTED]'])",
    ),
    (
        "cli-escaped-json-argument-list",
        '{\\"args\\": [\\"--token\\", \\"abc123\\"]}',
        '{\\"args\\": [\\"--token\\", \\"[REDACTED]\\"]}',
    ),
    # Accepted over-redaction: a `password: <value>` pair is masked whatever the value.
    ("password-type-annotation", "password: str", "password: [REDACTED]"),
]

LOOK_ALIKES = [
    "disk-usage",
    "task-force",
    "risk-free",
    "sk-",
    "ask-me",
    "desk-lamp",
    "sk-learn",
    "we use sk-learn-compatible estimators",
    "call hf_hub_download(repo_id)",
    "The Asia region and AKIA alone",
    "eyJ alone, eyJhbGci without dots",
    "max_tokens=512 and input_tokens: 1200",
    "token count 512, tokens per second",
    "monkey: banana",
    "the password policy requires 12 characters",
    "Bearer bonds are risky",
    "the bearer of bad news",
    "if token == None:",
    "redis://localhost:6379/0 and https://example.com/path?q=1",
    "ghp_short gho_ github_pat_ xoxb- xapp-",
    "AIzaShort",
    "key points: latency, cost",
    "PRIVATE KEY material is never logged",
    "email me at the office",
    "Authorization failed for this request",
    "sk_live_ alone",
    "hooks.slack.com/services/short",
    "glpat- alone, glpat-short and global-rate-limiter-configuration-x",
    "npm_config_cache and npm_package_version and npm_ alone",
    "sk-proj- alone and sk-proj-short",
    "ya29 alone and ya29.short",
    "maxTokens: 512, inputTokens=3 and tokenCount: 7",
    "primaryKey: id and sortKey: name",
    "a signature= field and AccountName=devstoreaccount1;",
    "docker login --password-stdin < pw.txt",
    "cache.local--password x and a--token y",
    '["--password", "--verbose"] and ["--token", 42]',
    "psql --no-password mydb and psql --no-password -h db",
    "mysql -u root -p mydb",
    "mkdir -p /tmp/x && gcc -pthread x.c",
    "tool --max-tokens 512 --tokenizer gpt2",
    "postgres://app@db.internal/x",
    "ssh://git@gitlab.com:2222/group/repo.git",
    "https://example.com:8443/path@v2 and user@host:path",
    # A ':' and an '@' after the first '/' are in the path; digits (or nothing) before the first
    # '/' are a port; a user with '@' is an scp-like repository path; '[' starts an IPv6 host.
    "http://example.com/a:b@c",
    "http://localhost:5173/@vite/client and http://localhost:/x@y",
    "https://example.com:8443/a/b@c/d",
    "pip install git+ssh://git@github.com:org/repo.git@v1.2",
    "http://[::1]:8080/pkg@2",
    # Upper-case words that end in a key name but are not one.
    "bob ALL=(ALL) NOPASSWD: ALL",
    "MAXTOKENS=512 and PASSWORDS: 3",
]


def _cases() -> list[Any]:
    cases = [
        pytest.param(f"use {secret} for the call", "use [REDACTED] for the call", id=kind)
        for kind, secret in TOKENS
    ]
    cases += [pytest.param(text, expected, id=kind) for kind, text, expected in IN_CONTEXT]
    return cases


@pytest.mark.parametrize(("text", "expected"), _cases())
def test_redact_credentials_replaces_the_secret_and_keeps_the_surrounding_text(
    text: str, expected: str
) -> None:
    assert redact_credentials(text) == expected


KEY_NAMES = [
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "secret_key",
    "secret_access_key",
    "api_key",
    "apikey",
    "token",
    "private_key",
    "account_key",
]


@pytest.mark.parametrize("name", KEY_NAMES)
def test_redact_credentials_knows_every_key_name_in_each_spelling(name: str) -> None:
    camel = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
    spellings = [name, name.upper(), f"db_{name}", camel, "my" + camel[0].upper() + camel[1:]]
    spellings.append("DB" + name.upper())  # glued to an upper-case prefix: DBPASSWORD
    for key in spellings:
        assert redact_credentials(f'{{"{key}": "v4lue"}}') == f'{{"{key}": "[REDACTED]"}}', key
        assert redact_credentials(f"{key}=v4lue x") == f"{key}=[REDACTED] x", key
    for key in (name, f"db_{name}"):
        dashed = key.replace("_", "-")
        assert redact_credentials(f"run --{dashed} v4lue x") == f"run --{dashed} [REDACTED] x", key


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_redact_credentials_leaves_look_alikes_unchanged(text: str) -> None:
    assert redact_credentials(text) == text


def test_redact_credentials_redacts_several_secrets_of_different_kinds_in_one_text() -> None:
    text = "\n".join(f"{kind}: {secret}" for kind, secret in TOKENS)
    redacted = redact_credentials(text)
    for _kind, secret in TOKENS:
        assert secret not in redacted
    assert redacted.count(REDACTED) >= len(TOKENS) - 1  # the two key blocks may merge


def test_redact_credentials_redacts_a_multi_line_private_key_block_and_keeps_what_follows() -> None:
    text = f"before\n{PRIVATE_KEY}\nafter {OPENSSH_KEY} end"
    assert redact_credentials(text) == "before\n[REDACTED]\nafter [REDACTED] end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contact alice.smith+eval@example.co.uk today", "contact [EMAIL] today"),
        ("cat /home/alice/projects/run.py", "cat /home/[USER]/projects/run.py"),
        ("open file:///home/erin/notes.txt", "open file:///home/[USER]/notes.txt"),
        ("ls /Users/bob/Library/Logs", "ls /Users/[USER]/Library/Logs"),
        ("C:\\Users\\carol\\AppData\\x.log", "C:\\Users\\[USER]\\AppData\\x.log"),
        ('{"path": "C:\\\\Users\\\\dave\\\\x"}', '{"path": "C:\\\\Users\\\\[USER]\\\\x"}'),
        ("c:\\users\\frank\\x", "c:\\users\\[USER]\\x"),
    ],
)
def test_mask_personal_masks_emails_and_home_directory_user_names(text: str, expected: str) -> None:
    assert mask_personal(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/home/about",
        "GET /api/users/42",
        "ping @alice on chat",
        "user@localhost",
        "a\\b path without users",
    ],
)
def test_mask_personal_leaves_urls_and_mentions_that_are_not_personal(text: str) -> None:
    assert mask_personal(text) == text


def test_stable_hash_is_a_16_hex_hmac_sha256_keyed_by_the_secret() -> None:
    expected = hmac.new(SECRET.encode(), b"alice", hashlib.sha256).hexdigest()[:16]
    assert stable_hash("alice", SECRET) == expected
    assert len(expected) == 16
    assert set(expected) <= set(string.hexdigits.lower())


def test_stable_hash_depends_on_the_secret_and_the_value() -> None:
    assert stable_hash("alice", SECRET) != stable_hash("alice", SECRET + "x")
    assert stable_hash("alice", SECRET) != stable_hash("bob", SECRET)
    assert stable_hash("alice", SECRET) != hashlib.sha256(b"alice").hexdigest()[:16]


def test_stable_hash_is_the_same_in_another_process() -> None:
    code = (
        "import sys; from nano_export.privacy import stable_hash; print(stable_hash(*sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "session-42", SECRET],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == stable_hash("session-42", SECRET)


@settings(max_examples=200, deadline=None)
@example(secret="k" * 64, values=["v"])  # a key of exactly one block is not hashed first
@example(secret="k" * 65, values=["v"])  # one byte more is
@example(secret="é" * 32, values=["v", None])  # 64 bytes in UTF-8
@example(secret="é" * 33, values=["é"])  # 66 bytes
@example(secret="x" * 200, values=[""])
@given(
    secret=st.text(min_size=1, max_size=100) | st.text(min_size=60, max_size=100),
    values=st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=12),
)
def test_a_columns_identities_are_the_standard_librarys_hmac(
    secret: str, values: list[str | None]
) -> None:
    # Secrets longer than SHA-256's 64-byte block are hashed first (RFC 2104): covered here.
    column = arrow_texts(values)
    hashed = policy._hash_array(column, secret)
    expected = [
        None
        if v is None
        else hmac.new(secret.encode(), v.encode(), hashlib.sha256).hexdigest()[:16]
        for v in values
    ]
    assert hashed.to_pylist() == expected


def test_stable_hash_refuses_an_empty_secret() -> None:
    with pytest.raises(InvalidSetting, match="SECRET_KEY"):
        stable_hash("alice", "")


# --- apply_policy ------------------------------------------------------------------------------

OPENAI_KEY = TOKENS[0][1]


def _frame() -> pd.DataFrame:
    """Rows as the exporter reads them: Arrow-backed strings, nulls, every sensitive column."""
    return pd.DataFrame(
        {
            "execution_id": ["e1", "e2", "e3"],
            "prompt": pd.Series(
                [f"my key is {OPENAI_KEY}", "mail bob@example.com", None], dtype="str"
            ),
            "response": pd.Series(
                ["see /home/alice/out.txt", None, "password=hunter2 sent"], dtype="str"
            ),
            "error": pd.Series([None, "token=abc123", None], dtype="str"),
            "arguments": pd.Series(['{"path": "/Users/bob/x"}', None, None], dtype="str"),
            "result": pd.Series(["plain text", None, None], dtype="str"),
            "user": pd.Series(["alice", None, "bob"], dtype="str"),
            "session_id": pd.Series(["s-1", "s-1", None], dtype="str"),
            "cost_usd": [0.5, None, 1.25],
        }
    )


def test_apply_policy_public_drops_free_text_and_hashes_identities_keeping_nulls() -> None:
    df = _frame()
    out = apply_policy(df, level="public", secret=SECRET)
    assert list(out.columns) == ["execution_id", "user", "session_id", "cost_usd"]
    assert out["user"].tolist()[0] == stable_hash("alice", SECRET)
    assert out["user"].tolist()[2] == stable_hash("bob", SECRET)
    assert out["user"].isna().tolist() == [False, True, False]
    assert out["session_id"].tolist()[:2] == [stable_hash("s-1", SECRET)] * 2
    assert out["session_id"].isna().tolist() == [False, False, True]
    pd.testing.assert_series_equal(out["cost_usd"], df["cost_usd"])
    pd.testing.assert_series_equal(out["execution_id"], df["execution_id"])


def test_apply_policy_standard_redacts_and_masks_text_and_hashes_every_identity() -> None:
    out = apply_policy(_frame(), level="standard", secret=SECRET)
    assert list(out.columns) == list(_frame().columns)
    assert out["prompt"].tolist()[:2] == ["my key is [REDACTED]", "mail [EMAIL]"]
    assert out["response"].tolist()[0] == "see /home/[USER]/out.txt"
    assert out["response"].tolist()[2] == "password=[REDACTED] sent"
    assert out["error"].tolist()[1] == "token=[REDACTED]"
    assert out["arguments"].tolist()[0] == '{"path": "/Users/[USER]/x"}'
    assert out["result"].tolist()[0] == "plain text"
    # The user column is hidden like the user names in the text, and still groups.
    assert out["user"].tolist()[0] == stable_hash("alice", SECRET)
    assert out["session_id"].tolist()[0] == stable_hash("s-1", SECRET)
    for name in ("prompt", "response", "error", "user", "session_id"):
        assert out[name].isna().tolist() == _frame()[name].isna().tolist(), name


def test_apply_policy_full_redacts_credentials_only_and_keeps_identities() -> None:
    out = apply_policy(_frame(), level="full", secret=SECRET)
    assert out["prompt"].tolist()[:2] == ["my key is [REDACTED]", "mail bob@example.com"]
    assert out["response"].tolist()[0] == "see /home/alice/out.txt"
    assert out["response"].tolist()[2] == "password=[REDACTED] sent"
    pd.testing.assert_series_equal(out["user"], _frame()["user"])
    pd.testing.assert_series_equal(out["session_id"], _frame()["session_id"])
    assert out["prompt"].isna().tolist() == [False, False, True]


@pytest.mark.parametrize("level", PRIVACY_LEVELS)
def test_apply_policy_leaves_its_input_frame_unchanged(level: Any) -> None:
    df = _frame()
    apply_policy(df, level=level, secret=SECRET)
    pd.testing.assert_frame_equal(df, _frame())


def test_apply_policy_accepts_object_columns_and_non_string_values() -> None:
    df = pd.DataFrame(
        {
            "prompt": pd.Series([f"k {OPENAI_KEY}", None, {"password": "x"}], dtype=object),
            "session_id": pd.Series([7, 7, None], dtype=object),
        }
    )
    out = apply_policy(df, level="standard", secret=SECRET)
    assert out["prompt"].tolist()[0] == "k [REDACTED]"
    assert pd.isna(out["prompt"].tolist()[1])
    assert out["prompt"].tolist()[2] == "{'password': '[REDACTED]'}"
    assert out["session_id"].tolist()[:2] == [stable_hash("7", SECRET)] * 2
    assert pd.isna(out["session_id"].tolist()[2])


def test_apply_policy_handles_frames_built_from_several_chunks() -> None:
    df = pd.concat([_frame(), _frame()], ignore_index=True)
    out = apply_policy(df, level="full", secret=SECRET)
    assert out["prompt"].tolist()[3] == "my key is [REDACTED]"
    assert out["prompt"].tolist()[0] == "my key is [REDACTED]"


def test_apply_policy_keeps_the_index_of_a_later_chunk() -> None:
    chunk = pd.concat([_frame()] * 3, ignore_index=True).iloc[3:6]
    for level in PRIVACY_LEVELS:
        out = apply_policy(chunk, level=level, secret=SECRET)
        assert out.index.tolist() == [3, 4, 5]
        for name in out.columns:
            assert out[name].index.equals(chunk.index), (level, name)
    full = apply_policy(chunk, level="full", secret=SECRET)
    assert full.loc[3, "prompt"] == "my key is [REDACTED]"


def test_apply_policy_keeps_all_null_identity_and_text_columns_null() -> None:
    df = pd.DataFrame(
        {
            "prompt": pd.Series([None, None], dtype="str"),
            "user": pd.Series([None, None], dtype="str"),
            "session_id": pd.Series([None, None], dtype="str"),
        }
    )
    for level in PRIVACY_LEVELS:
        out = apply_policy(df, level=level, secret=SECRET)
        assert out.isna().all().all(), level


def test_apply_policy_on_frames_without_sensitive_columns_or_rows() -> None:
    plain = pd.DataFrame({"model": ["gpt-4o"], "cost_usd": [0.1]})
    pd.testing.assert_frame_equal(apply_policy(plain, level="public", secret=SECRET), plain)
    empty = _frame().iloc[0:0]
    out = apply_policy(empty, level="standard", secret=SECRET)
    assert len(out) == 0
    assert list(out.columns) == list(empty.columns)


def test_apply_policy_without_sensitive_columns_needs_no_secret() -> None:
    df = pd.DataFrame({"prompt": pd.Series([f"x {OPENAI_KEY}"], dtype="str")})
    assert apply_policy(df, level="full", secret="")["prompt"].tolist() == ["x [REDACTED]"]


def test_apply_policy_refuses_an_unknown_level() -> None:
    with pytest.raises(BadInput, match="unknown privacy level 'secret'"):
        apply_policy(_frame(), level="secret", secret=SECRET)  # type: ignore[arg-type]


def test_apply_policy_acts_on_exactly_the_free_text_and_identity_columns() -> None:
    assert {"prompt", "response", "error", "arguments", "result"} == FREE_TEXT
    assert {"user", "session_id"} == IDENTITY
    out = apply_policy(_frame(), level="public", secret=SECRET)
    assert not FREE_TEXT & set(out.columns)


ALL_TEXTS = (
    [f"use {secret} now" for _, secret in TOKENS]
    + [text for _, text, _ in IN_CONTEXT]
    + LOOK_ALIKES
    + ["mail a.b@example.org", "/home/alice/x", "C:\\Users\\bob\\y", "/Users/carol/z"]
)


@pytest.mark.parametrize("level", ["standard", "full"])
def test_apply_policy_gives_each_cell_what_the_text_functions_give(level: Any) -> None:
    """The vectorised pre-screen never skips a cell that the substitution would change."""
    df = pd.DataFrame({"response": pd.Series(ALL_TEXTS, dtype="str")})
    out = apply_policy(df, level=level, secret=SECRET)["response"].tolist()
    for text, got in zip(ALL_TEXTS, out, strict=True):
        want = redact_credentials(text)
        assert got == (mask_personal(want) if level == "standard" else want), text


# --- properties --------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [secret for _, secret in TOKENS]
    + [text for _, text, _ in IN_CONTEXT]
    + LOOK_ALIKES
    + [
        "sk-",
        "token=",
        "Password: ",
        "Bearer ",
        "Authorization: ",
        "://",
        "@",
        "a@b.io",
        "/home/",
        "\\Users\\",
        "PRIVATE KEY",
        "-----BEGIN EC PRIVATE KEY-----",
        "-----END EC PRIVATE KEY-----",
        "[REDACTED]",
        "\n",
        " ",
        "'",
        '"',
        "=",
        ":",
        "\\",
        "@",
        "p@ss",
        "://u:",
        "/",
        "?",
        "dbPassword",
        "accessToken",
        "--password ",
        "--client-secret ",
        "mysql -u root",
        " -p",
        "&sig=",
        ";AccountKey=",
        "SharedAccessSignature=",
        "gl" + "pat-",
        "np" + "m_",
        "sk-" + "proj-",
        "ya" + "29.",
        ":pa/ss@",
        "://u:a/",
        "DBPASSWORD=",
        "NOPASSWD: ",
    ]
)
TEXTS = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=8).map("".join)


def _screened(text: str, screen: str) -> bool:
    return bool(pc.match_substring_regex(pa.array([text], pa.large_string()), screen)[0].as_py())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_redact_credentials_is_idempotent(text: str) -> None:
    once = redact_credentials(text)
    assert redact_credentials(once) == once
    standard = mask_personal(once)
    assert mask_personal(redact_credentials(standard)) == standard


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(TEXTS, st.text(max_size=60)))
def test_a_text_without_a_secret_trigger_is_left_unchanged_and_never_lengthened(text: str) -> None:
    """Texts the pre-screen lets through must be exactly those the substitution leaves alone."""
    if not _screened(text, privacy.credential_screen()):
        assert redact_credentials(text) == text
    if not _screened(text, privacy.personal_screen()):
        assert mask_personal(text) == text
    if redact_credentials(text) != text:
        assert _screened(text, privacy.credential_screen())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), TEXTS), min_size=1, max_size=20))
def test_apply_policy_equals_the_text_functions_on_any_column(cells: list[str | None]) -> None:
    df = pd.DataFrame({"prompt": pd.Series(cells, dtype="str")})
    full = apply_policy(df, level="full", secret=SECRET)["prompt"].tolist()
    standard = apply_policy(df, level="standard", secret=SECRET)["prompt"].tolist()
    for cell, got_full, got_standard in zip(cells, full, standard, strict=True):
        if cell is None:
            assert pd.isna(got_full) and pd.isna(got_standard)
        else:
            assert got_full == redact_credentials(cell)
            assert got_standard == mask_personal(redact_credentials(cell))


# --- roles -------------------------------------------------------------------------------------

ALLOWED = {
    ("viewer", "public"),
    ("analyst", "public"),
    ("analyst", "standard"),
    ("admin", "public"),
    ("admin", "standard"),
    ("admin", "full"),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("level", PRIVACY_LEVELS)
def test_check_level_allows_exactly_the_levels_of_each_role(role: Any, level: Any) -> None:
    if (role, level) in ALLOWED:
        check_level(role, level)
        assert level in ALLOWED_LEVELS[role]
    else:
        with pytest.raises(PermissionDenied) as raised:
            check_level(role, level)
        message = str(raised.value)
        assert f"role '{role}'" in message
        assert f"'{level}' was requested" in message


def test_check_level_message_names_the_role_the_allowed_and_the_requested_level() -> None:
    with pytest.raises(PermissionDenied) as raised:
        check_level("viewer", "standard")
    assert str(raised.value) == (
        "role 'viewer' may export privacy level 'public' only; 'standard' was requested"
    )
    with pytest.raises(PermissionDenied) as raised:
        check_level("analyst", "full")
    assert str(raised.value) == (
        "role 'analyst' may export privacy levels 'public' and 'standard' only; "
        "'full' was requested"
    )


def test_check_level_refuses_an_unknown_role() -> None:
    with pytest.raises(PermissionDenied, match="role 'guest' may not export"):
        check_level("guest", "public")  # type: ignore[arg-type]


def test_columns_for_level_leaves_out_free_text_at_public_only() -> None:
    names = ["execution_id", "prompt", "model", "response", "error", "user", "arguments", "result"]
    assert columns_for_level(names, "public") == ["execution_id", "model", "user"]
    assert columns_for_level(names, "standard") == names
    assert columns_for_level(names, "full") == names


# --- the screen in SQL (filters on free text) ----------------------------------------------------


def _corpus_texts() -> list[str]:
    texts = [f"token {secret} here" for _kind, secret in TOKENS]
    texts += [text for _kind, text, _expected in IN_CONTEXT]
    texts += list(LOOK_ALIKES) + [f"{name}=hunter2" for name in KEY_NAMES]
    texts += ["mail bob@example.com", "cat /home/alice/x", r"C:\Users\carol\y", "plain words"]
    return texts


def test_the_sql_screen_flags_every_text_a_level_would_change_on_either_database(engine) -> None:
    from sqlalchemy import Text, literal, select, union_all

    texts = _corpus_texts()
    rows = union_all(*(select(literal(t, Text).label("t")) for t in texts)).subquery("corpus")
    with engine.connect() as conn:
        unflagged = set(
            conn.execute(
                select(rows.c.t).where(~privacy.MayBeMasked(rows.c.t))  # type: ignore[arg-type]
            ).scalars()
        )
    changed = {t for t in texts if mask_personal(redact_credentials(t)) != t}
    assert changed, "the corpus holds credentials"
    assert not changed & unflagged  # never lets masked text through
    assert "plain words" in unflagged and "disk-usage" in unflagged  # and is not everything


# --- long runs of letters and digits (base64, tokens) ---------------------------------------------

_BLOB_TEXT = base64.b64encode(random.Random(5).randbytes(600)).decode()  # 800 characters


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.none(), TEXTS, st.builds(lambda a, b: a + _BLOB_TEXT + b, TEXTS, TEXTS)))
)
def test_cells_with_long_base64_runs_are_redacted_like_any_other(cells: list[str | None]) -> None:
    df = pd.DataFrame(
        {"prompt": pd.Series(cells, dtype="str"), "response": pd.Series(cells, dtype="str")}
    )
    for level, expect in (
        ("full", redact_credentials),
        ("standard", lambda t: mask_personal(redact_credentials(t))),
    ):
        out = apply_policy(df, level=level, secret=SECRET)  # type: ignore[arg-type]
        for name in ("prompt", "response"):
            for cell, got in zip(cells, out[name].tolist(), strict=True):
                assert pd.isna(got) if cell is None else got == expect(cell)


def test_the_joined_screen_never_reads_a_long_base64_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """RE2's joined screen slows down a hundredfold on such runs: those cells go to the rules."""
    seen: list[str] = []
    real = policy.scan.matching_cells

    def spy(arr: Any, pattern: str) -> Any:
        seen.extend(v for v in arr.to_pylist() if v is not None)
        return real(arr, pattern)

    monkeypatch.setattr(policy.scan, "matching_cells", spy)
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    cells = ["plain words", f"image: {_BLOB_TEXT} then key {key}", "mail anna@example.org", None]
    out = apply_policy(pd.DataFrame({"response": cells}), level="standard", secret=SECRET)
    assert seen and not any(_BLOB_TEXT[:300] in v for v in seen)
    assert out["response"].tolist()[:3] == [
        "plain words",
        mask_personal(redact_credentials(cells[1])),
        "mail [EMAIL]",
    ]
    assert key not in out["response"][1]


@pytest.mark.parametrize("level", ["full", "standard", "public"])
def test_flags_screened_ahead_give_the_same_result_as_screening_in_place(level: Any) -> None:
    cells = ["plain", "key AKIA" + "ABCDEFGHIJKLMNOP", None, "anna@example.org", _BLOB_TEXT]
    df = pd.DataFrame(
        {
            "prompt": pd.Series(cells, dtype="str"),
            "response": pd.Series(cells[::-1], dtype="str"),
            "session_id": ["s1", "s2", "s3", "s4", "s5"],
        }
    )
    flags = policy.screen_flags(df, level=level)
    assert (flags is None) == (level == "public")
    ahead = apply_policy(df, level=level, secret=SECRET, flags=flags)
    pd.testing.assert_frame_equal(ahead, apply_policy(df, level=level, secret=SECRET))
    if flags is not None:
        with pytest.raises(ValueError, match="flags"):
            apply_policy(df, level=level, secret=SECRET, flags=flags.slice(1))


# --- repeated text: each distinct value is read once per chunk --------------------------------

_REPEATED = ["the same test prompt", "key AKIA" + "ABCDEFGHIJKLMNOP", None, "anna@example.org"] * 5


def test_the_screen_reads_each_distinct_value_of_a_chunk_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test's prompt is the same for every model it runs on: screened once, flagged everywhere."""
    read: list[str] = []
    real = policy.scan.matching_cells

    def spy(arr: Any, pattern: str) -> Any:
        read.extend(v for v in arr.to_pylist() if v is not None)
        return real(arr, pattern)

    monkeypatch.setattr(policy.scan, "matching_cells", spy)
    column = pa.array(_REPEATED, pa.string())
    flags = policy._screen([column], policy._screen_of("standard")).to_pylist()
    assert sorted(read) == sorted({v for v in _REPEATED if v is not None})
    assert flags == [False, True, False, True] * 5


def test_columns_are_screened_as_one_whether_their_values_repeat_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Values that do not repeat are screened as they are: finding distinct values would only
    copy them. The flags come back in the columns' order, one after the other."""
    encoded: list[list[str | None]] = []
    real = pc.dictionary_encode

    def spy(arr: Any, *args: Any, **kwargs: Any) -> Any:
        encoded.append(arr.to_pylist())
        return real(arr, *args, **kwargs)

    calls: list[int] = []
    real_match = policy.scan.matching_cells

    def count(arr: Any, pattern: str) -> Any:
        calls.append(len(arr))
        return real_match(arr, pattern)

    monkeypatch.setattr(policy.pc, "dictionary_encode", spy)
    monkeypatch.setattr(policy.scan, "matching_cells", count)
    unique = [f"answer {i}" for i in range(19)] + ["token ghp_" + "a" * 36]
    columns = [pa.array(unique, pa.string()), pa.array(_REPEATED, pa.string())]
    flags = policy._screen(columns, policy._screen_of("standard")).to_pylist()
    assert encoded == [_REPEATED]
    assert calls == [20 + 3]  # one search: the unique cells and the repeated column's values
    assert flags == [False] * 19 + [True] + [False, True, False, True] * 5


@pytest.fixture
def standard_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the standard level's redaction is called with, in order."""
    calls: list[str] = []
    real = policy._redact_standard

    def spy(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(policy, "_redact_standard", spy)
    return calls


def _redact_standard_of(text: str) -> str:
    return mask_personal(redact_credentials(text))


def test_a_repeated_flagged_value_is_redacted_once_per_chunk(standard_calls: list[str]) -> None:
    out = apply_policy(pd.DataFrame({"prompt": _REPEATED}), level="standard", secret=SECRET)
    assert sorted(standard_calls) == sorted({_REPEATED[1], _REPEATED[3]})
    expected = [None if v is None else _redact_standard_of(v) for v in _REPEATED]
    assert [None if pd.isna(v) else v for v in out["prompt"].tolist()] == expected


def test_a_value_repeated_across_chunks_of_one_export_is_redacted_once(
    standard_calls: list[str],
) -> None:
    """A prompt sent to every model comes back in many chunks: the export's memo keeps it."""
    memo = privacy.Redactions()
    chunk = pa.table({"prompt": pa.array(_REPEATED, pa.string())})
    first = apply_policy(chunk, level="standard", secret=SECRET, memo=memo)
    second = apply_policy(chunk, level="standard", secret=SECRET, memo=memo)
    assert sorted(standard_calls) == sorted({_REPEATED[1], _REPEATED[3]})
    assert first.equals(second)
    # Another level redacts by other rules: the same memo does not answer for it. This text is
    # flagged at both levels and redacted differently (standard also masks the address).
    both = "key AKIA" + "ABCDEFGHIJKLMNOP" + " from anna@example.org"
    assert _redact_standard_of(both) != redact_credentials(both)
    mixed = pa.table({"prompt": pa.array([both], pa.string())})
    standard = apply_policy(mixed, level="standard", secret=SECRET, memo=memo)
    full = apply_policy(mixed, level="full", secret=SECRET, memo=memo)
    assert standard.column("prompt").to_pylist() == [_redact_standard_of(both)]
    assert full.column("prompt").to_pylist() == [redact_credentials(both)]


def test_the_memo_forgets_the_least_recently_used_texts_beyond_its_size() -> None:
    calls: list[str] = []

    def redact(text: str) -> str:
        calls.append(text)
        return text.upper()

    # Each entry counts its text, its redaction and ENTRY_CHARS for the memo's own bookkeeping.
    entry = 8 + policy.ENTRY_CHARS
    memo = privacy.Redactions(limit=2 * entry + 4)
    assert [memo.of(t, redact) for t in ("aaaa", "bbbb", "aaaa")] == ["AAAA", "BBBB", "AAAA"]
    assert calls == ["aaaa", "bbbb"] and memo.chars == 2 * entry  # both held
    memo.of("cccc", redact)  # a third entry is over the limit: "bbbb", used least recently, goes
    memo.of("aaaa", redact)
    memo.of("bbbb", redact)
    assert calls == ["aaaa", "bbbb", "cccc", "bbbb"]
    assert memo.chars == 2 * entry
    memo.of("x" * 70, redact)  # larger than the memo: redacted, never kept, nothing evicted
    memo.of("x" * 70, redact)
    assert calls[-2:] == ["x" * 70, "x" * 70] and memo.chars == 2 * entry
    memo.of("aaaa", redact)
    assert calls.count("aaaa") == 1


def test_a_column_with_a_third_of_its_sample_repeated_is_screened_by_distinct_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A small sample shows more distinct values than its chunk holds: 65% distinct repeats."""
    encoded: list[int] = []
    real = pc.dictionary_encode
    monkeypatch.setattr(
        policy.pc, "dictionary_encode", lambda arr: encoded.append(len(arr)) or real(arr)
    )
    answers = [f"answer {i % 13}" for i in range(20)]  # 13 distinct of 20
    flags = policy._screen([pa.array(answers, pa.string())], policy._screen_of("standard"))
    assert encoded == [20] and flags.to_pylist() == [False] * 20
    policy._screen([pa.array([f"answer {i}" for i in range(20)])], policy._screen_of("standard"))
    assert encoded == [20]  # all distinct: screened as they are
