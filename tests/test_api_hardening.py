"""The running server refuses oversized and over-nested bodies, framing and its metrics route."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import Server, start_server
from conftest import BACKENDS
from sqlalchemy import text

from nano_export import schema
from nano_export.db import get_engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for the module."""
    work = tmp_path_factory.mktemp(f"hardening-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{work / 'nano-export.db'}"
    else:
        db_url = request.getfixturevalue("pg_server_url")
        names = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
        with get_engine(db_url).begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    srv = start_server(work, db_url)
    try:
        yield srv
    finally:
        srv.stop()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    piece = b'{"dataset": "' + b"x" * (size - 13)
    while sent < total:
        yield piece
        sent += len(piece)


def test_a_5_mb_chunked_body_gets_413_and_the_server_stays_small(server: Server) -> None:
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.rss_kb())
            stop.wait(0.02)

    with server.client("vic") as client:  # a viewer's token is enough to try
        client.get("/api/exports")  # warm the code path first
        before = server.rss_kb()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            response = client.post(
                "/api/exports",
                content=_chunks(5 << 20),  # an iterator: sent chunked, no Content-Length
                headers={"Content-Type": "application/json"},
            )
        finally:
            stop.set()
            sampler.join()
        after = server.rss_kb()
    assert response.status_code == 413, response.text
    assert "larger than 1000000 bytes" in response.json()["error"]
    growth_mb = (max(peak, after) - before) / 1024
    print(f"\n5 MiB chunked body: server RSS growth {growth_mb:.1f} MiB")
    assert growth_mb < 20


def test_deeply_nested_json_gets_422_not_500(server: Server) -> None:
    with server.client("ann") as client:
        response = client.post(
            "/api/exports",
            content=b"[" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert "nests deeper than" in response.json()["error"]


@pytest.mark.parametrize("path", ["/", "/api/health", "/api/exports", "/_stcore/health"])
def test_every_response_forbids_framing(server: Server, path: str) -> None:
    with server.client() as client:
        response = client.get(path)
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_streamlits_metrics_route_is_off(server: Server) -> None:
    with server.client() as client:
        assert client.get("/_stcore/metrics").status_code == 404


def test_no_secret_file_is_left_in_the_data_folder(server: Server) -> None:
    # The signing secret comes from the setting or the database, never a file on disk.
    assert not (Path(server.settings.data_dir) / "secret.key").exists()
