"""Exports kept on S3 (a real S3-compatible server on loopback): publish, download, retention."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import fsspec
import pytest
from api_server import insert_executions, write_auth_file
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from nano_export import api, jobs, logs, tokens
from nano_export.db import utcnow
from nano_export.models import ExportRecord, ExportRequest
from nano_export.schema import audit_events
from nano_export.settings import Settings

ROWS = 90


@pytest.fixture
def s3_settings(settings: Settings, engine: Engine, s3_url: str) -> Settings:
    """Settings whose export store is a fresh S3 prefix, over a database with ROWS executions."""
    insert_executions(engine, ROWS)
    write_auth_file(settings)
    return settings.model_copy(update={"storage_url": s3_url})


def export(settings: Settings, engine: Engine, **request: object) -> ExportRecord:
    return jobs.submit_export(
        engine,
        settings,
        user="ann",
        role="analyst",
        request=ExportRequest.model_validate({"dataset": "evaluation-results", **request}),
        interface="api",
        wait=True,
    )


def objects(url: str) -> list[str]:
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    bucket = url.removeprefix("s3://").split("/")[0]
    return sorted(fs.find(bucket))


def test_an_export_is_published_at_its_final_key_with_no_temporary_object_left(
    s3_settings: Settings, engine: Engine
) -> None:
    rec = export(s3_settings, engine)
    assert rec.status == "succeeded" and rec.rows_done == ROWS
    url = s3_settings.storage_url
    assert rec.file_path == f"{url}/{rec.id}.csv"
    assert objects(url) == [f"{url.removeprefix('s3://')}/{rec.id}.csv"]
    data = fsspec.filesystem("s3").cat_file(rec.file_path)
    assert len(data) == rec.bytes and hashlib.sha256(data).hexdigest() == rec.sha256
    assert data.count(b"\n") == ROWS + 1
    assert list(s3_settings.export_dir.iterdir()) == []  # the local staging file is gone


@pytest.fixture
def client(s3_settings: Settings) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=api.routes(s3_settings))) as c:
        yield c


def test_download_streams_from_s3_with_the_headers_and_audit_of_a_local_file(
    s3_settings: Settings, engine: Engine, client: TestClient
) -> None:
    rec = export(s3_settings, engine, format="csv.gz")
    token = tokens.create_token(engine, name="ann")
    response = client.get(
        f"/api/exports/{rec.id}/download", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == rec.sha256
    assert response.headers["content-length"] == str(rec.bytes) == str(len(response.content))
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["x-content-sha256"] == rec.sha256
    assert response.headers["content-disposition"] == f'attachment; filename="{rec.file_name}"'

    # The same export kept in the local folder is served with the same headers.
    local = s3_settings.model_copy(update={"storage_url": ""})
    rec_local = export(local, engine, format="csv.gz")
    with TestClient(Starlette(routes=api.routes(local))) as c:
        local_response = c.get(
            f"/api/exports/{rec_local.id}/download", headers={"Authorization": f"Bearer {token}"}
        )
    wanted = {"content-type", "content-length", "content-disposition", "x-content-sha256"}
    assert wanted <= set(local_response.headers) and wanted <= set(response.headers)

    with engine.connect() as conn:
        downloaded = conn.execute(
            select(audit_events.c.actor, audit_events.c.interface).where(
                audit_events.c.event == "export.downloaded",
                audit_events.c.export_id == rec.id,
            )
        ).all()
    assert [tuple(row) for row in downloaded] == [("ann", "api")]


def test_an_object_removed_from_the_store_is_a_409_not_a_broken_stream(
    s3_settings: Settings, engine: Engine, client: TestClient
) -> None:
    rec = export(s3_settings, engine)
    fsspec.filesystem("s3").rm_file(rec.file_path)
    token = tokens.create_token(engine, name="ann")
    response = client.get(
        f"/api/exports/{rec.id}/download", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 409
    assert "no longer in the export store" in response.json()["error"]


def test_retention_deletes_the_object_from_the_store(s3_settings: Settings, engine: Engine) -> None:
    rec = export(s3_settings, engine)
    kept = export(s3_settings, engine)
    assert jobs.prune_exports(engine, s3_settings) == 0
    later = utcnow() + timedelta(days=s3_settings.export_retention_days, minutes=1)
    assert jobs.prune_exports(engine, s3_settings, now=later) == 2
    assert objects(s3_settings.storage_url) == []
    assert {
        jobs.get_export(engine, export_id=i, user="ann", role="analyst").status
        for i in (rec.id, kept.id)
    } == {"expired"}


def test_a_failing_upload_fails_the_export_and_leaves_nothing_at_the_final_key(
    s3_settings: Settings, engine: Engine
) -> None:
    broken = s3_settings.model_copy(update={"storage_url": "s3://no-such-bucket-nx/exports"})
    rec = export(broken, engine)
    assert rec.status == "failed"
    assert rec.error and rec.error.startswith("could not store")
    assert not fsspec.filesystem("s3").exists(f"no-such-bucket-nx/exports/{rec.id}.csv")
    assert list(s3_settings.export_dir.iterdir()) == []
    with engine.connect() as conn:
        events = conn.execute(
            select(audit_events.c.event).where(audit_events.c.export_id == rec.id)
        ).scalars()
        assert list(events)[-1] == "export.failed"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    package = logging.getLogger("nano_export")
    saved = (list(package.handlers), package.level)
    logs.configure("json")
    stream = io.StringIO()
    handler = next(h for h in package.handlers if h.get_name() == "nano_export")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        package.handlers[:] = saved[0]
        package.setLevel(saved[1])


def test_export_log_lines_carry_export_user_interface_and_no_text_or_secret(
    s3_settings: Settings, engine: Engine, json_log: io.StringIO
) -> None:
    # The prompts hold an email and an sk-proj- key; a full-privacy export writes them (masked).
    rec = jobs.submit_export(
        engine,
        s3_settings,
        user="ada",
        role="admin",
        request=ExportRequest(dataset="evaluation-results", privacy="full"),
        interface="notebook",
        wait=True,  # in this thread: an embedded worker of an earlier test has other settings
    )
    assert rec.status == "succeeded"
    text = json_log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    mine = [line for line in lines if line.get("export_id") == rec.id]
    assert {line["msg"] for line in mine} >= {"export queued", "export stored"}
    assert all(line["user"] == "ada" and line["interface"] == "notebook" for line in mine)
    for leaked in ("sk-proj-", "@example.com", "jane1", "Answer 1,"):
        assert leaked not in text


def test_the_reaper_removes_the_temporary_object_of_a_dead_upload(
    s3_settings: Settings, engine: Engine
) -> None:
    from factories import insert_export

    old = utcnow() - timedelta(minutes=5)
    staging = s3_settings.export_dir / "dead1.csv"
    insert_export(engine, owner="ann", export_id="dead1", at=old, file_path=str(staging))
    fs = fsspec.filesystem("s3")
    root = s3_settings.storage_url.removeprefix("s3://")
    fs.pipe(f"{root}/.dead1.csv.a1b2c3.part", b"half an upload")
    fs.pipe(f"{root}/.other.csv.a1b2c3.part", b"someone else's upload")
    assert jobs.reap_stale(engine, s3_settings) == 1
    assert objects(s3_settings.storage_url) == [f"{root}/.other.csv.a1b2c3.part"]


def test_a_stored_file_whose_export_did_not_succeed_after_all_is_discarded(
    s3_settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    from nano_export.jobs import files

    rec = export(s3_settings, engine)
    assert rec.file_path
    files.discard_file(s3_settings, rec.id, rec.format, rec.file_path)
    assert objects(s3_settings.storage_url) == []
    elsewhere = tmp_path / "mine.csv"  # a CLI --out file of an export cancelled at the end
    elsewhere.write_text("a\n")
    files.discard_file(s3_settings, "x1", "csv", str(elsewhere))
    assert not elsewhere.exists()
