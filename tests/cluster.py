"""Several dashboard processes on one PostgreSQL database and one S3 store, all on loopback.

Shared by the cluster test and ``bench/cluster_bench.py``: a database of its own on the PostgreSQL
server, a bucket on the S3 test server, N ``streamlit run app.py`` replicas started by
:func:`api_server.start_server` and M ``nano-export worker`` processes, each with its own data
folder (staging files). No process is given ``NANO_EXPORT_SECRET_KEY``: all sign with the secret
``nano-export init`` stored in the shared database, where the users, login sessions and API tokens
live too, so a login cookie or token from any replica works on all.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from api_server import Server, start_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nano_export.db import dispose_engines


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database on ``server_url``'s server, dropped at the end."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"nano_export_cluster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class WorkerProcess:
    """A ``nano-export worker`` process of the cluster."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def stop(self) -> None:
        """SIGTERM the worker (by its PID) and wait; SIGKILL if it will not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_worker(folder: Path, env: dict[str, str], concurrency: int = 2) -> WorkerProcess:
    """Start ``nano-export worker`` with ``env`` and its own data folder; wait until it runs."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "worker.log"
    worker_env = {**env, "NANO_EXPORT_DATA_DIR": str(folder / "data")}
    cmd = [sys.executable, "-m", "nano_export", "-v", "worker", "--concurrency", str(concurrency)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=worker_env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(proc, log_path, worker_env)
    deadline = time.monotonic() + 60
    while "Starting worker on" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return worker


@dataclass
class Cluster:
    """The dashboard replicas and worker processes of one cluster."""

    servers: list[Server]
    workers: list[WorkerProcess] = field(default_factory=list)


@contextmanager
def cluster(
    work: Path,
    db_url: str,
    storage_url: str,
    s3_env: dict[str, str],
    *,
    dashboards: int = 2,
    workers: int = 2,
) -> Iterator[Cluster]:
    """``dashboards`` web replicas and ``workers`` worker processes on ``db_url``.

    With workers the replicas run none of their own (``NANO_EXPORT_EMBEDDED_WORKER=false``);
    without, each replica runs exports in its embedded worker.
    """
    env = {**s3_env, "NANO_EXPORT_STORAGE_URL": storage_url, "NANO_EXPORT_LOG_FORMAT": "json"}
    if workers:
        env["NANO_EXPORT_EMBEDDED_WORKER"] = "false"
    running = Cluster(servers=[])
    try:
        for n in range(dashboards):
            folder = work / f"replica-{chr(ord('a') + n)}"
            folder.mkdir(parents=True, exist_ok=True)
            running.servers.append(start_server(folder, db_url, env, secret=None))
        for n in range(workers):
            worker_env = {**running.servers[0].env, **env}
            running.workers.append(start_worker(work / f"worker-{n + 1}", worker_env))
        yield running
    finally:
        for worker in running.workers:
            worker.stop()
        for server in running.servers:
            server.stop()
