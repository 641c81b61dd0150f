"""The HTTP API over a real ``streamlit run app.py`` server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import factories
import httpx
import jwt
import pytest
from api_server import ROWS, SECRET, Server, insert_executions, start_server
from conftest import BACKENDS
from sqlalchemy import text

from nano_export import schema
from nano_export.audit import list_events
from nano_export.db import get_engine, utcnow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for the whole module, with 90 executions and five users."""
    work = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{work / 'nano-export.db'}"
    else:
        db_url = request.getfixturevalue("pg_server_url")
        names = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
        with get_engine(db_url).begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    srv = start_server(work, db_url)
    insert_executions(srv.engine)
    try:
        yield srv
    finally:
        srv.stop()


def wait_done(client: httpx.Client, export_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``GET /api/exports/{id}`` until the export leaves queued/running."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/exports/{export_id}").json()
        if body["status"] not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"export still {body['status']}"
        time.sleep(0.1)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The response is a JSON error with ``status`` whose reason holds every fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    reason = response.json()["error"]
    assert isinstance(reason, str) and reason
    assert "Traceback" not in response.text
    for fragment in fragments:
        assert fragment in reason
    return reason


def login_cookie(username: str, *, key: str = SECRET, expires_in: float = 3600) -> str:
    """A login cookie made exactly as streamlit-authenticator 0.4.2's CookieModel makes it."""
    payload = {"username": username, "exp_date": time.time() + expires_in}
    return jwt.encode(payload, key, algorithm="HS256")


def insert_export(server: Server, *, owner: str, status: str, file_path: Path | None = None) -> str:
    """An export row written straight to the server's database (no job behind it)."""
    return factories.insert_export(
        server.engine,
        owner=owner,
        status=status,
        privacy="public",
        interface="api",
        file_path=str(file_path) if file_path else None,
    )


# --- one port, public routes ------------------------------------------------------------------


def test_dashboard_health_and_api_are_served_on_one_port(server: Server) -> None:
    with server.client() as client:
        assert client.get("/_stcore/health").text == "ok"
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_openapi_describes_every_route_and_the_request_body(server: Server) -> None:
    with server.client() as client:
        doc = client.get("/api/openapi.json").json()

    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {
        "/api/exports",
        "/api/exports/{export_id}",
        "/api/exports/{export_id}/download",
    }
    assert set(doc["paths"]["/api/exports"]) == {"get", "post"}
    body = doc["components"]["schemas"]["ExportRequest"]
    assert {"dataset", "filters", "columns", "rename", "privacy", "format"} <= set(
        body["properties"]
    )


def test_unknown_api_route_is_a_json_404(server: Server) -> None:
    with server.client("ann") as client:
        assert_error(client.get("/api/nothing-here"), 404, "/api/nothing-here")


# --- 401 ----------------------------------------------------------------------------------------


def test_requests_without_credentials_get_401_with_a_bearer_challenge(server: Server) -> None:
    with server.client() as client:
        responses = [
            client.get("/api/exports"),
            client.post("/api/exports", json={"dataset": "evaluation-results"}),
            client.get("/api/exports/abc"),
            client.get("/api/exports/abc/download"),
        ]
    for response in responses:
        assert_error(response, 401, "Bearer")
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nxt_not-a-real-token",
        "Bearer",
        "Basic YWRhOnB3",
        "nxt_token-without-scheme",
    ],
)
def test_invalid_tokens_and_other_schemes_get_401(server: Server, header: str) -> None:
    with server.client() as client:
        response = client.get("/api/exports", headers={"Authorization": header})
    assert_error(response, 401)


def test_revoked_token_gets_401_while_the_users_new_token_works(server: Server) -> None:
    with server.client("revoked") as client:
        assert_error(client.get("/api/exports"), 401, "revoked")
    with server.client("bob") as client:
        assert client.get("/api/exports").status_code == 200


def test_token_of_a_removed_user_gets_401(server: Server) -> None:
    with server.client("ghost") as client:
        assert_error(client.get("/api/exports"), 401, "revoked")


def test_dashboard_login_cookie_authenticates_the_user(server: Server) -> None:
    with server.client(cookies={"nano_export_auth": server.session_cookie("ann")}) as client:
        listed = client.get("/api/exports")
        created = client.post("/api/exports", json={"dataset": "performance-metrics"})
    assert listed.status_code == 200
    assert created.status_code == 202, created.text
    with server.client("ann") as client:
        assert wait_done(client, created.json()["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(login_cookie("ann", key="some-other-key-0123456789abcdef-0123"), id="forged"),
        pytest.param(login_cookie("ann", expires_in=-5), id="expired"),
        pytest.param(login_cookie("mallory"), id="unknown-user"),
        pytest.param(login_cookie("ann"), id="no-session"),
        pytest.param(jwt.encode({"username": "ada"}, SECRET, algorithm="HS256"), id="no-expiry"),
        pytest.param(
            jwt.encode({"username": "ada", "exp_date": time.time() + 99}, None, algorithm="none"),
            id="unsigned",
        ),
        pytest.param("not.a.jwt", id="garbage"),
    ],
)
def test_forged_expired_or_unknown_login_cookies_get_401(server: Server, cookie: str) -> None:
    with server.client(cookies={"nano_export_auth": cookie}) as client:
        assert_error(client.get("/api/exports"), 401)


def test_cookie_authenticated_post_must_be_json_against_cross_site_forms(server: Server) -> None:
    with server.client(cookies={"nano_export_auth": server.session_cookie("ann")}) as client:
        response = client.post(
            "/api/exports",
            content='{"dataset": "evaluation-results"}',
            headers={"Content-Type": "text/plain"},
        )
    assert_error(response, 415, "application/json")


# --- the round trip -----------------------------------------------------------------------------


def test_create_poll_download_round_trip_matches_sha256_and_row_count(server: Server) -> None:
    request = {
        "dataset": "evaluation-results",
        "filters": {"provider": ["openai"], "success": True},
        "columns": ["execution_id", "provider", "cost_usd", "prompt"],
        "rename": {"cost_usd": "cost"},
        "privacy": "standard",
        "format": "csv",
    }
    expected_rows = sum(1 for n in range(1, ROWS + 1) if n % 3 == 0 and n % 7 != 0)
    with server.client("ann") as client:
        created = client.post("/api/exports", json=request)
        assert created.status_code == 202, created.text
        export_id = created.json()["id"]
        assert created.json()["status"] in ("queued", "running", "succeeded")
        assert created.headers["location"] == f"/api/exports/{export_id}"

        done = wait_done(client, export_id)
        download = client.get(f"/api/exports/{export_id}/download")

    assert done["status"] == "succeeded", done
    assert set(done) == factories.RECORD_FIELDS
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == (
        f'attachment; filename="evaluation-results-{export_id[:8]}.csv"'
    )
    assert "content-encoding" not in download.headers
    assert hashlib.sha256(download.content).hexdigest() == done["sha256"]
    assert len(download.content) == done["bytes"]
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8"))))
    assert rows[0] == ["execution_id", "provider", "cost", "prompt"]
    assert len(rows) - 1 == done["rows_total"] == done["rows_done"] == expected_rows
    assert {r[1] for r in rows[1:]} == {"openai"}
    assert "sk-proj-" not in download.text and "@example.com" not in download.text

    with server.engine.connect() as conn:
        events = list_events(conn, export_id=export_id)
    downloaded = [e for e in events if e.event == "export.downloaded"]
    assert [(e.actor, e.interface) for e in downloaded] == [("ann", "api")]


def test_gzip_export_downloads_as_application_gzip(server: Server) -> None:
    with server.client("ann") as client:
        created = client.post(
            "/api/exports", json={"dataset": "performance-metrics", "format": "csv.gz"}
        )
        done = wait_done(client, created.json()["id"])
        download = client.get(f"/api/exports/{done['id']}/download")

    assert download.headers["content-type"] == "application/gzip"
    assert download.headers["content-disposition"].endswith('.csv.gz"')
    assert hashlib.sha256(download.content).hexdigest() == done["sha256"]
    lines = gzip.decompress(download.content).decode("utf-8").splitlines()
    assert len(lines) - 1 == ROWS


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("csv", "text/csv; charset=utf-8"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("parquet", "application/vnd.apache.parquet"),
        ("jsonl", "application/jsonl"),
        ("jsonl.gz", "application/gzip"),
    ],
)
def test_every_format_is_served_with_its_content_type_and_extension(
    server: Server, fmt: str, content_type: str, tmp_path: Path
) -> None:
    with server.client("ann") as client:
        created = client.post(
            "/api/exports", json={"dataset": "performance-metrics", "format": fmt}
        )
        assert created.status_code == 202, created.text
        done = wait_done(client, created.json()["id"])
        download = client.get(f"/api/exports/{done['id']}/download")

    assert done["status"] == "succeeded", done
    assert download.headers["content-type"] == content_type
    assert download.headers["content-disposition"].endswith(f'.{fmt}"')
    assert hashlib.sha256(download.content).hexdigest() == done["sha256"]
    path = tmp_path / f"file.{fmt}"
    path.write_bytes(download.content)
    if fmt == "xlsx":
        from openpyxl import load_workbook

        rows = sum(s.max_row - 1 for s in load_workbook(path, read_only=True).worksheets)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_metadata(path).num_rows
    else:
        raw = gzip.decompress(download.content) if fmt.endswith(".gz") else download.content
        rows = len(raw.decode("utf-8").splitlines()) - (1 if fmt == "csv" else 0)
    assert rows == ROWS


def test_an_unknown_format_gets_422_naming_the_formats(server: Server) -> None:
    with server.client("ann") as client:
        response = client.post(
            "/api/exports", json={"dataset": "performance-metrics", "format": "xml"}
        )
    assert_error(response, 422, "format", "'csv'", "'xlsx'", "'parquet'", "'jsonl.gz'")


def test_list_returns_the_callers_exports_newest_first(server: Server) -> None:
    with server.client("vic") as client:
        ids = []
        for _ in range(2):
            created = client.post(
                "/api/exports", json={"dataset": "performance-metrics", "privacy": "public"}
            )
            ids.append(created.json()["id"])
            wait_done(client, ids[-1])
        listed = client.get("/api/exports").json()

    assert [e["id"] for e in listed] == ids[::-1]
    assert all("owner" not in e for e in listed)


def test_admin_lists_everyones_exports_with_all_and_others_may_not(server: Server) -> None:
    with server.client("vic") as client:
        created = client.post(
            "/api/exports", json={"dataset": "performance-metrics", "privacy": "public"}
        ).json()
        wait_done(client, created["id"])
        assert_error(client.get("/api/exports", params={"all": "1"}), 403, "admin")
    with server.client("ada") as client:
        own = client.get("/api/exports").json()
        everyone = client.get("/api/exports", params={"all": "1"}).json()

    assert created["id"] not in {e["id"] for e in own}
    assert {"id": created["id"], "owner": "vic"}.items() <= next(
        e for e in everyone if e["id"] == created["id"]
    ).items()


def test_another_users_export_is_404_like_a_missing_one_but_admins_see_it(
    server: Server,
) -> None:
    with server.client("vic") as client:
        created = client.post(
            "/api/exports", json={"dataset": "performance-metrics", "privacy": "public"}
        ).json()
        wait_done(client, created["id"])
    export_id = created["id"]
    missing = "x" * len(export_id)
    with server.client("bob") as client:
        for suffix in ("", "/download"):
            hidden = assert_error(client.get(f"/api/exports/{export_id}{suffix}"), 404)
            absent = assert_error(client.get(f"/api/exports/{missing}{suffix}"), 404)
            assert hidden.replace(export_id, "ID") == absent.replace(missing, "ID")
    with server.client("ada") as client:
        assert client.get(f"/api/exports/{export_id}").json()["id"] == export_id
        assert client.get(f"/api/exports/{export_id}/download").status_code == 200


# --- 422, 403, 429, 409 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"{not json", "not valid JSON", id="bad-json"),
        pytest.param(b"[1, 2]", "JSON object", id="not-an-object"),
        pytest.param(b"{}", "dataset", id="missing-dataset"),
        pytest.param(
            b'{"dataset": "evaluation-results", "colour": "red"}', "colour", id="unknown-field"
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "privacy": "secret"}', "privacy", id="bad-privacy"
        ),
        pytest.param(b'{"dataset": "nope"}', "nope", id="unknown-dataset"),
        pytest.param(
            b'{"dataset": "evaluation-results", "columns": ["provider", "colour"]}',
            "colour",
            id="unknown-column",
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "filters": {"where": "cost_usd >> 1"}}',
            "position",
            id="bad-where",
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "filters": {"since": "2025-02-01",'
            b' "until": "2025-01-01"}}',
            "since",
            id="since-after-until",
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "filters": {"success": "yes"}}',
            "filters.success",
            id="success-not-a-boolean",
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "filters": {"success": 0}}',
            "filters.success",
            id="success-a-number",
        ),
        pytest.param(
            b'{"dataset": "evaluation-results", "filters": {"provider": "openai"}}',
            "array",
            id="provider-not-a-list",
        ),
    ],
)
def test_invalid_requests_get_422_with_the_reason(
    server: Server, body: bytes, fragment: str
) -> None:
    with server.client("ann") as client:
        response = client.post(
            "/api/exports", content=body, headers={"Content-Type": "application/json"}
        )
    assert_error(response, 422, fragment)


def test_viewer_asking_for_standard_privacy_gets_403_and_is_audited(server: Server) -> None:
    with server.client("vic") as client:
        response = client.post(
            "/api/exports", json={"dataset": "evaluation-results", "privacy": "standard"}
        )
    assert_error(response, 403, "standard")
    with server.engine.connect() as conn:
        denied = list_events(conn, actor="vic", event="export.denied")
    assert denied and denied[-1].interface == "api" and denied[-1].privacy == "standard"


def test_request_at_the_concurrency_limit_gets_429(server: Server) -> None:
    held = [insert_export(server, owner="busy", status="running") for _ in range(2)]
    with server.engine.begin() as conn:
        for slot, export_id in enumerate(held):
            conn.execute(
                schema.export_slots.insert().values(
                    owner="busy", slot=slot, export_id=export_id, taken_at=utcnow()
                )
            )
    with server.client("busy") as client:
        response = client.post("/api/exports", json={"dataset": "performance-metrics"})
    assert_error(response, 429, "2 export(s)")


def test_download_of_an_unfinished_export_gets_409(server: Server) -> None:
    export_id = insert_export(server, owner="ann", status="running")
    with server.client("ann") as client:
        assert client.get(f"/api/exports/{export_id}").json()["status"] == "running"
        assert_error(client.get(f"/api/exports/{export_id}/download"), 409, "running")


def test_each_request_is_logged_with_method_path_status_user_and_duration(server: Server) -> None:
    with server.client("ann") as client:
        client.get("/api/exports/no-such-export")
    deadline = time.monotonic() + 5
    wanted = "method='GET' path='/api/exports/no-such-export' status=404 user='ann' duration_ms="
    while wanted not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert wanted in server.log_path.read_text()
