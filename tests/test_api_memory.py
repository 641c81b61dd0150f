"""Downloads stream from disk: the server's memory does not grow with the size of the file."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import Server, start_server
from factories import insert_export

from nano_export.db import utcnow

pytestmark = pytest.mark.slow

FILE_MB = 300
BOUND_MB = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A SQLite-backed server for this module."""
    work = tmp_path_factory.mktemp("api-memory")
    srv = start_server(work, f"sqlite:///{work / 'nano-export.db'}")
    try:
        yield srv
    finally:
        srv.stop()


def new_export_file(server: Server) -> tuple[str, Path]:
    """An export id and the path its file has in the export folder."""
    export_id = secrets.token_urlsafe(18)
    server.settings.export_dir.mkdir(parents=True, exist_ok=True)
    return export_id, server.settings.export_dir / f"{export_id}.csv"


def register_file(server: Server, export_id: str, path: Path, *, owner: str, sha256: str) -> str:
    """A succeeded export row for the file at ``path``, as if a job had written it."""
    now = utcnow()
    return insert_export(
        server.engine,
        owner=owner,
        export_id=export_id,
        status="succeeded",
        at=now,
        rows_done=FILE_MB * 10_000,
        rows_total=FILE_MB * 10_000,
        bytes=path.stat().st_size,
        sha256=sha256,
        file_path=str(path),
        interface="api",
        started_at=now,
        finished_at=now,
    )


def write_big_csv(path: Path, megabytes: int) -> str:
    """A CSV of ``megabytes`` MiB (100-byte rows); returns its sha256."""
    row = b"12345,openai,gpt-5-mini,2025-06-01T00:00:00+00:00,true," + b"x" * 44 + b"\n"
    block = b"id,provider,model,started_at,success,text" + b" " * 59 + b"\n" + row * 10_485
    block = block[: 1 << 20]
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(megabytes):
            fh.write(block)
            digest.update(block)
    return digest.hexdigest()


def test_server_memory_does_not_grow_with_a_300_mb_download(server: Server) -> None:
    big_id, path = new_export_file(server)
    expected = write_big_csv(path, FILE_MB)
    small_id, small = new_export_file(server)
    small_sha = write_big_csv(small, 1)
    register_file(server, big_id, path, owner="ann", sha256=expected)
    register_file(server, small_id, small, owner="ann", sha256=small_sha)

    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.rss_kb())
            stop.wait(0.02)

    with server.client("ann") as client:
        warm = client.get(f"/api/exports/{small_id}/download")  # warm the code path first
        assert hashlib.sha256(warm.content).hexdigest() == small_sha
        before = server.rss_kb()
        sampler = threading.Thread(target=sample)
        sampler.start()
        digest = hashlib.sha256()
        received = 0
        try:
            with client.stream("GET", f"/api/exports/{big_id}/download") as response:
                assert response.status_code == 200
                assert int(response.headers["content-length"]) == FILE_MB << 20
                for chunk in response.iter_raw(1 << 20):
                    digest.update(chunk)
                    received += len(chunk)
        finally:
            stop.set()
            sampler.join()
        after = server.rss_kb()

    growth_mb = (max(peak, after) - before) / 1024
    print(
        f"\ndownload {FILE_MB} MiB: server RSS before {before / 1024:.1f} MiB, "
        f"peak {peak / 1024:.1f} MiB, after {after / 1024:.1f} MiB, growth {growth_mb:.1f} MiB"
    )
    path.unlink()
    assert received == FILE_MB << 20
    assert digest.hexdigest() == expected
    assert growth_mb < BOUND_MB
