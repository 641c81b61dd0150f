"""A real ``streamlit run app.py`` server for API tests: data folder, users, tokens, start, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from factories import write_users
from sqlalchemy import Engine, insert

from nano_export import auth, sessions, tokens
from nano_export.db import get_engine
from nano_export.schema import execution_metrics, executions
from nano_export.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "api-test-secret-0123456789abcdef0123456789abcdef"
#: user -> role written to the auth file of every test server.
USERS = {"ada": "admin", "ann": "analyst", "bob": "analyst", "vic": "viewer", "busy": "analyst"}
PROVIDERS = ("openai", "anthropic", "ollama")
MODELS = {"openai": "gpt-5-mini", "anthropic": "claude-sonnet-4-20250514", "ollama": "gpt-oss:20b"}
ROWS = 90  # executions inserted; a third per provider


@dataclass
class Server:
    """A running server and what the tests need to talk to it and to its database."""

    proc: subprocess.Popen[bytes]
    base_url: str
    settings: Settings
    env: dict[str, str]
    log_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        """The server's database, opened from the test process."""
        return get_engine(self.settings.db_url)

    def session_cookie(self, username: str) -> str:
        """A login cookie with an open session, as the dashboard sets it after a login."""
        user = auth.get_user(self.engine, username)
        assert user is not None, username
        sid = sessions.start_session(self.engine, user_id=user.id, max_age_h=1)
        secret = self.settings.resolved_secret()
        return sessions.encode_cookie(username=username, sid=sid, secret=secret, max_age_h=1)

    def client(self, user: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client, authenticated with ``user``'s API token when given."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kwargs)

    def rss_kb(self) -> int:
        """The server process's resident set size in KiB (from /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("VmRSS not found")

    def stop(self) -> None:
        """SIGTERM the server (by its PID) and wait for it to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def insert_executions(engine: Engine, rows: int = ROWS) -> None:
    """Executions across providers, each with metrics; prompts hold an email and an API key."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    execs, metrics = [], []
    for n in range(1, rows + 1):
        provider = PROVIDERS[n % len(PROVIDERS)]
        execs.append(
            {
                "id": n,
                "source_key": f"api-test:{n}",
                "test_id": f"t{n % 5}",
                "test_name": f"Test {n % 5}",
                "provider": provider,
                "model": MODELS[provider],
                "started_at": start + timedelta(hours=n),
                "success": n % 7 != 0,
                "error": None if n % 7 else "timeout",
                "execution_time_s": 1.5 + n / 10,
                "prompt": f"Ask jane{n}@example.com with key sk-proj-{'a' * 24}{n}",
                "response": f"Answer {n}, with a comma",
                "user": f"user{n % 3}",
                "session_id": f"s{n}",
                "source": "api-test",
            }
        )
        metrics.append(
            {
                "execution_id": n,
                "input_tokens": 100 + n,
                "output_tokens": 50 + n,
                "total_tokens": 150 + 2 * n,
                "cost_usd": 0.001 * n,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(executions), execs)
        conn.execute(insert(execution_metrics), metrics)


def write_auth_file(settings: Settings) -> None:
    """USERS in the users table, password "pw" (a cheap bcrypt cost keeps tests fast)."""
    write_users(settings, USERS, password="pw")


def start_server(
    work: Path,
    db_url: str,
    extra_env: dict[str, str] | None = None,
    *,
    secret: str | None = SECRET,
) -> Server:
    """Initialise a data folder on ``db_url`` with users and tokens, then start the server.

    ``secret=None`` sets no ``NANO_EXPORT_SECRET_KEY``: the server signs with the secret that
    ``nano-export init`` stored in the database.
    """
    data_dir = work / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANO_EXPORT_")}
    if secret is not None:
        env["NANO_EXPORT_SECRET_KEY"] = secret
    env.update(
        NANO_EXPORT_DATA_DIR=str(data_dir),
        NANO_EXPORT_DATABASE_URL=db_url,
        NANO_EXPORT_MAX_CONCURRENT_EXPORTS="2",
        NANO_EXPORT_CHUNK_ROWS="1000",
        NANO_EXPORT_LOGIN_FREE_FAILURES="100",  # the tests send many bad credentials on purpose
        **(extra_env or {}),
    )
    subprocess.run(
        [str(BIN / "nano-export"), "init"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    settings = get_settings(data_dir=data_dir, database_url=db_url, secret_key=secret or "")
    write_auth_file(settings)
    engine = get_engine(db_url)
    issued = {user: tokens.create_token(engine, name=user) for user in USERS}
    write_users(settings, {**USERS, "ghost": "viewer"}, password="pw")
    issued["ghost"] = tokens.create_token(engine, name="ghost")
    write_users(settings, USERS, password="pw")  # ghost removed: its token is dead
    issued["revoked"] = tokens.create_token(engine, name="bob")
    tokens.revoke_tokens(engine, name="bob")
    issued["bob"] = tokens.create_token(engine, name="bob")

    port = free_port()
    log_path = work / "server.log"
    cmd = [
        str(BIN / "streamlit"),
        "run",
        str(ROOT / "app.py"),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", settings, env, log_path, issued)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/_stcore/health", timeout=2).text == "ok":
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server not healthy after 90 s:\n{log_path.read_text()[-3000:]}")
