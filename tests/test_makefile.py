"""``make run``: the dashboard's port and the base URL of its links agree (dry runs only)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _streamlit_line(extra_env: dict[str, str]) -> list[str]:
    """The words of the streamlit command ``make -n run PORT=8765`` would run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"NANO_EXPORT_BASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PORT"}
    }
    env.update(extra_env)
    done = subprocess.run(
        ["make", "-n", "run", "PORT=8765"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = [line for line in done.stdout.splitlines() if "streamlit run" in line]
    return shlex.split(line)


def test_make_run_links_to_the_port_it_serves() -> None:
    words = _streamlit_line({})
    assert words[words.index("--server.port") + 1] == "8765"
    assert "NANO_EXPORT_BASE_URL=http://127.0.0.1:8765" in words


def test_make_run_keeps_the_users_own_base_url() -> None:
    words = _streamlit_line({"NANO_EXPORT_BASE_URL": "https://nano.example.org"})
    assert words[words.index("--server.port") + 1] == "8765"
    assert "NANO_EXPORT_BASE_URL=https://nano.example.org" in words
    assert not any("127.0.0.1:8765" in w for w in words)
