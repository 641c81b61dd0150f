"""Two dashboard replicas on one PostgreSQL database and one S3 store (all on loopback).

Two web-only dashboards and two ``nano-export worker`` processes, none given
``NANO_EXPORT_SECRET_KEY``: all sign with the secret stored in the shared database. An export
started on replica A through the API runs on a worker, and is followed, listed and downloaded on
replica B with the same API token; its bytes match its sha256. (The browser variant — log in on A,
download on B with the same cookie — is still missing.)
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import SECRET, Server, insert_executions
from cluster import Cluster, cluster, own_database
from conftest import PG_URL
from s3_server import new_bucket
from sqlalchemy import select

from nano_export import auth, keystore, sessions
from nano_export.schema import exports

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROWS = 3_000


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[Cluster]:
    """Dashboards A and B (no embedded workers) and two ``nano-export worker`` processes."""
    if not PG_URL:
        pytest.skip("NANO_EXPORT_TEST_PG_URL is not set")
    work = tmp_path_factory.mktemp("cluster")
    storage_url = f"s3://{new_bucket()}/exports"
    with own_database(PG_URL) as db_url, cluster(work, db_url, storage_url, s3_env) as running:
        insert_executions(running.servers[0].engine, ROWS)
        yield running


def wait_done(server: Server, token_user: str, export_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with server.client(token_user) as client:
        while True:
            record = client.get(f"/api/exports/{export_id}").json()
            if record["status"] not in ("queued", "running"):
                return record
            assert time.monotonic() < deadline, f"export still {record['status']}"
            time.sleep(0.2)


def test_export_started_on_a_downloads_from_b_with_the_same_token(
    replicas: Cluster,
) -> None:
    a, b = replicas.servers
    token = a.tokens["ann"]
    with a.client() as client:
        started = client.post(
            "/api/exports",
            json={"dataset": "evaluation-results", "format": "csv"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert started.status_code == 202
    export_id = started.json()["id"]

    b.tokens["ann-from-a"] = token
    record = wait_done(b, "ann-from-a", export_id)
    assert record["status"] == "succeeded" and record["rows_done"] == ROWS
    with b.client("ann-from-a") as client:
        listed = [r["id"] for r in client.get("/api/exports").json()]
        download = client.get(f"/api/exports/{export_id}/download")
    assert export_id in listed
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == record["sha256"]
    assert download.headers["x-content-sha256"] == record["sha256"]
    assert int(download.headers["content-length"]) == record["bytes"] == len(download.content)
    assert download.content.count(b"\n") == ROWS + 1
    # A worker ran it, and nothing of it stays on any disk: the file lives in the store.
    with a.engine.connect() as conn:
        ran_on = conn.execute(select(exports.c.worker).where(exports.c.id == export_id)).scalar()
    assert ran_on in {f"{os.uname().nodename}:{w.proc.pid}" for w in replicas.workers}
    for folder in [s.settings.export_dir for s in replicas.servers] + [
        w.log_path.parent / "data" / "exports" for w in replicas.workers
    ]:
        assert not any(Path(folder).glob(f"*{export_id}*"))


def test_both_replicas_are_healthy_and_report_the_same_metrics(
    replicas: Cluster,
) -> None:
    bodies = []
    for server in replicas.servers:
        with server.client("ada") as client:
            health = client.get("/api/health")
            assert health.status_code == 200, health.text
            assert health.json()["storage"] == "ok"
            metrics = client.get("/api/metrics")
            assert metrics.status_code == 200
            bodies.append(
                sorted(
                    line
                    for line in metrics.text.splitlines()
                    if line.startswith("nano_export_exports{")
                )
            )
    assert bodies[0] == bodies[1] and bodies[0]


def test_the_replicas_sign_with_the_secret_stored_in_the_database(replicas: Cluster) -> None:
    """No process gets the secret through its settings: a cookie from one is good on the other
    only because both read the one ``nano-export init`` stored in the shared database."""
    for env in [s.env for s in replicas.servers] + [w.env for w in replicas.workers]:
        assert "NANO_EXPORT_SECRET_KEY" not in env
    a, b = replicas.servers
    with a.engine.connect() as conn:
        stored = keystore.get_value(conn, keystore.SECRET_KEY)
    assert stored and stored != SECRET
    user = auth.get_user(a.engine, "ann")
    assert user is not None
    sid = sessions.start_session(a.engine, user_id=user.id, max_age_h=1)
    for secret, expected in ((stored, 200), (SECRET, 401)):
        cookie = sessions.encode_cookie(username="ann", sid=sid, secret=secret, max_age_h=1)
        for server in (a, b):
            with server.client(cookies={auth.COOKIE_NAME: cookie}) as client:
                assert client.get("/api/exports").status_code == expected, server.base_url
