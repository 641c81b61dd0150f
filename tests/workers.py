"""For the worker tests: a fresh PostgreSQL database, ``nano-export worker`` processes, waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from factories import insert_executions
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from nano_export.bootstrap import initialize
from nano_export.db import dispose_engines
from nano_export.jobs import queue
from nano_export.schema import execution_metrics, executions, interactions
from nano_export.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "worker-test-secret-0123456789abcdef0123456789abcd"
STALL_S = 3.0
T = TypeVar("T")


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"nano_export_workers_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        queue.stop_embedded()
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_rows(engine: Engine, n: int, *, base: int = 10_000) -> None:
    """``n`` executions on PostgreSQL, quickly: ``base`` from the factory, then copies in SQL."""
    base = min(base, n)
    insert_executions(engine, base)
    names = {t.name: [c.name for c in t.columns] for t in (executions, execution_metrics)}
    shifted = {"id": "id + :off", "source_key": "source_key || ':' || :off"}
    it_cols = [c.name for c in interactions.columns if c.name != "id"]
    offset = base
    with engine.begin() as conn:
        while offset < n:
            k = min(base, n - offset)
            ex = ", ".join(shifted.get(c, c) for c in names["executions"])
            me = ", ".join("execution_id + :off" if c == "execution_id" else c
                           for c in names["execution_metrics"])  # fmt: skip
            it = ", ".join("execution_id + :off" if c == "execution_id" else c for c in it_cols)
            params = {"off": offset, "k": k}
            conn.execute(
                text(f"INSERT INTO executions SELECT {ex} FROM executions WHERE id <= :k"), params
            )
            conn.execute(
                text(
                    f"INSERT INTO execution_metrics SELECT {me} FROM execution_metrics "
                    "WHERE execution_id <= :k"
                ),
                params,
            )
            conn.execute(
                text(
                    f"INSERT INTO interactions ({', '.join(it_cols)}) SELECT {it} "
                    "FROM interactions WHERE execution_id <= :k"
                ),
                params,
            )
            offset += k
        conn.exec_driver_sql("ANALYZE")


def worker_settings(db_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings of the test process: no embedded worker, a short stall timeout; initialised."""
    values: dict[str, object] = {
        "secret_key": SECRET,
        "embedded_worker": False,
        "worker_stall_timeout_s": STALL_S,
        **overrides,
    }
    settings = get_settings(database_url=db_url, data_dir=data_dir, **values)
    initialize(settings)
    return settings


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a child process needs to share ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANO_EXPORT_")}
    env.update(
        {
            "NANO_EXPORT_DATABASE_URL": settings.db_url,
            "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
            "NANO_EXPORT_SECRET_KEY": settings.secret_key or SECRET,
            "NANO_EXPORT_CHUNK_ROWS": str(settings.chunk_rows),
            "NANO_EXPORT_WORKER_STALL_TIMEOUT_S": str(settings.worker_stall_timeout_s),
        }
    )
    env.update(extra)
    return env


@dataclass
class Worker:
    """A ``nano-export worker`` process started by a test."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def name(self) -> str:
        """The name the worker writes in the ``worker`` column of the exports it runs."""
        return f"{os.uname().nodename}:{self.proc.pid}"

    def log(self) -> str:
        """What the worker printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the worker (by its PID) and wait for it; SIGKILL if it will not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_worker(
    settings: Settings, work: Path, *args: str, command: str = "worker", **env: str
) -> Worker:
    """Start ``nano-export worker`` on ``settings``' database; return once it has started."""
    log_path = work / f"worker-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nano_export", command, *args],  # no -v: a service logs
            cwd=ROOT,
            env=environment(settings, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(proc, log_path)
    wait_until(
        lambda: proc.poll() is not None or "Starting worker on" in worker.log(),
        timeout=60,
        what=lambda: f"worker registered:\n{worker.log()[-2000:]}",
    )
    if proc.poll() is not None:
        raise RuntimeError(f"worker exited early:\n{worker.log()[-3000:]}")
    return worker


def wait_until(
    check: Callable[[], T], *, timeout: float, what: Callable[[], str] | str, every: float = 0.05
) -> T:
    """Poll ``check`` until it returns something true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout} s waiting for {text}")
        time.sleep(every)
