"""moto's standalone S3 server on a loopback port, started and stopped by the test suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec.config
import httpx
from api_server import free_port

BIN = Path(sys.executable).parent
#: The environment a process needs to reach the server through fsspec and s3fs.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def running_s3_server(log_path: Path) -> Iterator[dict[str, str]]:
    """Start ``moto_server`` on a free loopback port; yields the environment that points at it.

    The variables are also set in this process (and fsspec's configuration re-read), so s3fs
    here talks to the server; both are restored and the server stopped at the end.
    """
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    env = {"FSSPEC_S3_ENDPOINT_URL": endpoint, **CREDENTIALS}
    saved = {k: os.environ.get(k) for k in env}
    saved_conf = dict(fsspec.config.conf.get("s3", {}))
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited:\n{log_path.read_text()[-2000:]}")
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer within 30 s") from None
                time.sleep(0.2)
        os.environ.update(env)
        fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
        fsspec.AbstractFileSystem.clear_instance_cache()
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        fsspec.config.conf["s3"] = saved_conf
        fsspec.AbstractFileSystem.clear_instance_cache()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def new_bucket() -> str:
    """Create a bucket with a unique name on the running server; returns its name."""
    name = f"nx-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name
