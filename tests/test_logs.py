"""Log lines: JSON or key=value, carrying export id, user and interface, never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from api_server import write_auth_file
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from nano_export import api, logs, tokens
from nano_export.settings import Settings

SECRET_TEXT = "password=hunter2-very-secret and key sk-proj-abcdefghijklmnopqrstuvwx123"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The package's log lines, written by ``logs.configure("json")``'s handler."""
    package = logging.getLogger("nano_export")
    saved = (list(package.handlers), package.level)
    logs.configure("json")
    handler = next(h for h in package.handlers if h.get_name() == "nano_export")
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        package.handlers[:] = saved[0]
        package.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_bound_context_and_the_extra_fields(captured: io.StringIO) -> None:
    log = logging.getLogger("nano_export.test")
    with logs.bind(export_id="e1", user="ann", interface="api"):
        log.info("export queued", extra={"dataset": "evaluation-results", "rows": 3})
    log.info("outside")
    first, second = lines(captured)
    assert first["msg"] == "export queued" and first["level"] == "INFO"
    assert (first["export_id"], first["user"], first["interface"]) == ("e1", "ann", "api")
    assert (first["dataset"], first["rows"]) == ("evaluation-results", 3)
    assert "export_id" not in second


def test_secrets_tokens_and_emails_never_reach_a_line_in_either_format(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("nano_export.test")
    token = "nxt_" + "A1b2C3d4" * 5
    try:
        raise ValueError(f"bad row: {SECRET_TEXT} from jane@example.com")
    except ValueError:
        log.exception("failed on %s", SECRET_TEXT, extra={"reason": f"token {token}"})
    out = captured.getvalue()
    record = lines(captured)[0]
    assert "ValueError" in str(record["exc"])
    text_line = logs.KeyValueFormatter().format(
        logging.makeLogRecord({"msg": SECRET_TEXT, "extra_token": token})
    )
    for line in (out, text_line):
        for leaked in ("hunter2", "sk-proj-abcdef", token, "jane@example.com"):
            assert leaked not in line


def test_configure_is_idempotent_and_switches_format() -> None:
    package = logging.getLogger("nano_export")
    saved = list(package.handlers)
    try:
        logs.configure("text")
        logs.configure("json")
        ours = [h for h in package.handlers if h.get_name() == "nano_export"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
    finally:
        package.handlers[:] = saved


def test_a_token_authenticated_api_call_logs_user_and_interface_but_not_the_token(
    settings: Settings, engine: Engine, captured: io.StringIO
) -> None:
    write_auth_file(settings)
    token = tokens.create_token(engine, name="ann")
    app = Starlette(routes=api.routes(settings.model_copy(update={"log_format": "json"})))
    handler = next(
        h for h in logging.getLogger("nano_export").handlers if h.get_name() == "nano_export"
    )
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    with TestClient(app) as client:
        assert client.get("/api/exports", headers={"Authorization": f"Bearer {token}"}).is_success
        client.get("/api/exports", headers={"Authorization": f"Bearer {token}x"})
    assert token not in captured.getvalue() and token[4:20] not in captured.getvalue()
    request_lines = [line for line in lines(captured) if line["msg"] == "api request"]
    assert [(line["user"], line["status"]) for line in request_lines] == [("ann", 200), (None, 401)]
    assert request_lines[0]["interface"] == "api"


def test_the_command_line_logs_the_libraries_too_in_the_chosen_format() -> None:
    root, package = logging.getLogger(), logging.getLogger("nano_export")
    saved = (list(root.handlers), root.level, list(package.handlers), package.level)
    try:
        logs.configure("json", everything=True)
        ours = [h for h in root.handlers if h.get_name() == "nano_export"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        assert not [h for h in package.handlers if h.get_name() == "nano_export"]
        stream = io.StringIO()
        assert isinstance(ours[0], logging.StreamHandler)
        ours[0].setStream(stream)
        logging.getLogger("procrastinate.worker").info("Starting worker on all queues")
        assert json.loads(stream.getvalue())["logger"] == "procrastinate.worker"
    finally:
        root.handlers[:], package.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        package.setLevel(saved[3])


def test_the_export_reader_thread_logs_with_the_exports_context(
    captured: io.StringIO, engine: Engine, tmp_path
) -> None:
    from factories import insert_executions

    from nano_export.exporter import plan_export, run_export
    from nano_export.models import ExportRequest

    insert_executions(engine, 3)
    plan = plan_export(ExportRequest(dataset="evaluation-results"))
    with logs.bind(export_id="e9", user="ann", interface="cli"):
        run_export(engine, plan, out_path=tmp_path / "x.csv", secret="k" * 40, chunk_rows=2)
    (reader,) = [line for line in lines(captured) if line["msg"] == "export reader"]
    assert (reader["export_id"], reader["user"], reader["interface"]) == ("e9", "ann", "cli")
