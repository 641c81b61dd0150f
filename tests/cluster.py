"""Several dashboard processes on one PostgreSQL database and one S3 store, all on loopback.

Shared by the cluster test and ``bench/cluster_bench.py``: a database of its own on the PostgreSQL
server, a bucket on the S3 test server, and N ``streamlit run app.py`` replicas started by
:func:`api_server.start_server`, each with its own data folder (staging files, users file) and the
same secret key. The API tokens live in the shared database, so any replica's token works on all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def replicas(
    work: Path, db_url: str, storage_url: str, s3_env: dict[str, str], count: int = 2
) -> Iterator[list[Server]]:
    """``count`` dashboard processes on ``db_url`` keeping files at ``storage_url``."""
    env = {**s3_env, "NANO_EXPORT_STORAGE_URL": storage_url, "NANO_EXPORT_LOG_FORMAT": "json"}
    servers: list[Server] = []
    try:
        for n in range(count):
            folder = work / f"replica-{chr(ord('a') + n)}"
            folder.mkdir(parents=True, exist_ok=True)
            servers.append(start_server(folder, db_url, env))
        yield servers
    finally:
        for server in servers:
            server.stop()
