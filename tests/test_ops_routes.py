"""GET /api/health and GET /api/metrics, served in-process by the API's own routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import factories
import pytest
from api_server import write_auth_file
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from nano_export import api, tokens
from nano_export.db import get_engine
from nano_export.settings import Settings, get_settings


def client_for(settings: Settings) -> TestClient:
    write_auth_file(settings)
    return TestClient(Starlette(routes=api.routes(settings)))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def bearer(engine: Engine, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(engine, name=user)}"}


def test_health_reports_database_storage_workers_and_the_queue(
    client: TestClient, engine: Engine, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        with engine.begin() as conn:  # one live worker (procrastinate's heartbeat row)
            conn.execute(text("DELETE FROM procrastinate_workers"))
            conn.execute(text("INSERT INTO procrastinate_workers DEFAULT VALUES"))
    for status in ("queued", "running", "running", "succeeded"):
        factories.insert_export(engine, owner="ann", status=status)
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "storage": "ok",
        "workers": {
            "kind": "embedded threads" if db_url.startswith("sqlite") else "procrastinate",
            "live": 1,
        },
        "queued": 1,
        "running": 2,
        "reasons": [],
        "warnings": [],
    }


@pytest.mark.postgres
def test_health_warns_but_stays_200_when_no_worker_is_alive(
    pg_server_url: str, tmp_path: Path
) -> None:
    engine = get_engine(pg_server_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM procrastinate_workers"))
        conn.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '1 hour')"
            )
        )
    pg = get_settings(database_url=pg_server_url, data_dir=tmp_path / "data", secret_key="k" * 40)
    pg.data_dir.mkdir(parents=True)
    with client_for(pg) as c:
        response = c.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["workers"] == {"kind": "procrastinate", "live": 0}
    assert body["warnings"][0].startswith("no export worker is running")


def test_health_is_503_naming_the_store_when_it_cannot_be_used(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    broken = settings.model_copy(update={"export_dir": blocker})
    with client_for(broken) as c:
        response = c.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["storage"].startswith("unavailable (")
    assert body["reasons"] == ["the export store cannot be reached"]


def test_health_is_503_when_the_s3_bucket_is_missing(
    settings: Settings, s3_env: dict[str, str]
) -> None:
    broken = settings.model_copy(update={"storage_url": "s3://no-such-bucket-xyz/exports"})
    with client_for(broken) as c:
        response = c.get("/api/health")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["the export store cannot be reached"]


def test_health_is_503_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    settings = get_settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'missing-folder' / 'nano.db'}",
        secret_key="k" * 40,
    )
    with TestClient(Starlette(routes=api.routes(settings))) as c:
        response = c.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "unavailable (OperationalError)"
    assert body["queued"] is None and body["workers"] is None
    assert "the database cannot be reached" in body["reasons"]


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_computed_from_the_shared_exports_table(
    client: TestClient, engine: Engine
) -> None:
    # Rows written as if by other processes: the scrape must count them all.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for seconds, rows, size in ((3, 100, 1_000), (40, 2_000, 30_000), (400, 5, 50)):
        factories.insert_export(
            engine,
            owner="ann",
            status="succeeded",
            rows_done=rows,
            bytes=size,
            started_at=start,
            finished_at=start + timedelta(seconds=seconds),
        )
    factories.insert_export(
        engine,
        owner="bob",
        status="expired",
        rows_done=7,
        bytes=70,
        started_at=start,
        finished_at=start + timedelta(seconds=1),
    )
    factories.insert_export(engine, owner="bob", status="running", rows_done=999)
    factories.insert_export(engine, owner="bob", status="queued")
    errors = [
        "the worker stopped responding (no heartbeat for 60 s)",
        "the worker stopped responding (no heartbeat for 60 s)",
        "could not store x.csv in s3://b/p: ConnectionError: reset",
        "(sqlite3.OperationalError) database is locked",
        "something else entirely",
    ]
    for error in errors:
        factories.insert_export(engine, owner="vic", status="failed", error=error)

    response = client.get("/api/metrics", headers=bearer(engine, "ada"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = metric_samples(response.text)
    status = {s: m[("nano_export_exports", (("status", s),))] for s in ("succeeded", "failed")}
    assert status == {"succeeded": 3, "failed": 5}
    assert m[("nano_export_exports", (("status", "cancelled"),))] == 0
    assert m[("nano_export_exports_running", ())] == 1
    assert m[("nano_export_exports_queued", ())] == 1
    assert m[("nano_export_rows_written_total", ())] == 100 + 2_000 + 5 + 7
    assert m[("nano_export_bytes_written_total", ())] == 1_000 + 30_000 + 50 + 70
    hist = "nano_export_export_duration_seconds"
    assert m[(f"{hist}_count", ())] == 4
    assert m[(f"{hist}_sum", ())] == pytest.approx(3 + 40 + 400 + 1, abs=0.01)
    assert m[(f"{hist}_bucket", (("le", "1.0"),))] == 1
    assert m[(f"{hist}_bucket", (("le", "5.0"),))] == 2
    assert m[(f"{hist}_bucket", (("le", "60.0"),))] == 3
    assert m[(f"{hist}_bucket", (("le", "+Inf"),))] == 4
    failures = {
        labels[0][1]: value
        for (name, labels), value in m.items()
        if name == "nano_export_export_failures_total"
    }
    assert failures == {
        "worker_lost": 2,
        "storage": 1,
        "database": 1,
        "disk_full": 0,
        "other": 1,
    }


def test_metrics_need_an_admin(client: TestClient, engine: Engine) -> None:
    assert client.get("/api/metrics").status_code == 401
    refused = client.get("/api/metrics", headers=bearer(engine, "ann"))
    assert refused.status_code == 403
    assert "only admins" in refused.json()["error"]


def test_metrics_are_open_when_the_setting_says_so(settings: Settings) -> None:
    with client_for(settings.model_copy(update={"metrics_public": True})) as c:
        response = c.get("/api/metrics")
    assert response.status_code == 200
    assert "nano_export_exports_running 0.0" in response.text
