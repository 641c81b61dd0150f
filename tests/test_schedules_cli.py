"""``schedules`` and ``scheduler`` commands: validation, exit codes, racing processes, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import insert_executions, write_users
from smtp_server import Inbox, smtp_server
from sqlalchemy import Engine, func, select, update

from nano_export import audit
from nano_export.cli import main
from nano_export.db import utcnow
from nano_export.schema import exports, schedules
from nano_export.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    write_users(settings, {"ann": "analyst"})
    return {
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_SECRET_KEY": settings.resolved_secret(),
        "NANO_EXPORT_SMTP_HOST": "",
    }


def cli(settings: Settings, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", settings.db_url, *args], env=env)


ADD = ["schedules", "add", "weekly-openai", "--user", "ann", "evaluation-results"]
GOOD = [
    *("--provider", "openai", "--every", "weekly", "--weekday", "mon", "--at", "07:30"),
    *("--tz", "Europe/Berlin", "--email", "a@example.org", "--email", "b@example.org"),
]


def test_add_then_list_as_json_shows_the_saved_spec(
    settings: Settings, env: dict[str, str]
) -> None:
    added = cli(settings, env, *ADD, *GOOD, "--columns", "execution_id,provider", "--gzip")
    assert added.exit_code == 0, added.output
    assert "weekly on mon at 07:30 Europe/Berlin" in added.output
    listed = cli(settings, env, "schedules", "list", "--json")
    (item,) = json.loads(listed.output)
    assert item["name"] == "weekly-openai" and item["owner"] == "ann"
    assert item["filters"] == {"provider": ["openai"]}
    assert item["columns"] == ["execution_id", "provider"] and item["format"] == "csv.gz"
    assert (item["every"], item["weekday"], item["at"], item["tz"]) == (
        "weekly", "mon", "07:30", "Europe/Berlin",
    )  # fmt: skip
    assert item["email"] == ["a@example.org", "b@example.org"] and item["paused"] is False
    table = cli(settings, env, "schedules", "list")
    assert "weekly-openai" in table.output and "active" in table.output


def test_a_schedule_keeps_its_format(settings: Settings, env: dict[str, str]) -> None:
    added = cli(settings, env, *ADD, *GOOD, "--format", "xlsx")
    assert added.exit_code == 0, added.output
    (item,) = json.loads(cli(settings, env, "schedules", "list", "--json").output)
    assert item["format"] == "xlsx"


def _replace(args: list[str], flag: str, value: str | None) -> list[str]:
    out = list(args)
    i = out.index(flag)
    if value is None:
        del out[i : i + 2]
    else:
        out[i + 1] = value
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_replace(GOOD, "--at", "25:00"), "bad time '25:00'"),
        (_replace(GOOD, "--tz", "Europe/Atlantis"), "unknown time zone 'Europe/Atlantis'"),
        (_replace(GOOD, "--weekday", None), "needs --weekday"),
        (_replace(GOOD, "--email", "nobody"), "bad email address 'nobody'"),
        ([*GOOD, "--where", "cost_usd >"], "position"),
        ([*GOOD, "--where", "nope = 1"], "nope"),
        ([*GOOD, "--success", "--failed"], "--success and --failed"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    settings: Settings, env: dict[str, str], args: list[str], message: str
) -> None:
    result = cli(settings, env, *ADD, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert json.loads(cli(settings, env, "schedules", "list", "--json").output) == []


def test_unknown_user_and_unknown_dataset_exit_2(settings: Settings, env: dict[str, str]) -> None:
    user = cli(settings, env, *_replace(ADD, "--user", "zed"), *GOOD)
    assert user.exit_code == 2 and "unknown user 'zed'" in user.output
    dataset = cli(settings, env, *ADD[:-1], "no-such-dataset", *GOOD)
    assert dataset.exit_code == 2 and "no-such-dataset" in dataset.output


def test_privacy_above_role_exits_3(settings: Settings, env: dict[str, str]) -> None:
    result = cli(settings, env, *ADD, *GOOD, "--privacy", "full")
    assert result.exit_code == 3 and "'full' was requested" in result.output


def test_pause_resume_remove_and_unknown_name(
    settings: Settings, env: dict[str, str], engine: Engine
) -> None:
    assert cli(settings, env, *ADD, *GOOD).exit_code == 0
    assert cli(settings, env, "schedules", "pause", "weekly-openai").exit_code == 0
    assert json.loads(cli(settings, env, "schedules", "list", "--json").output)[0]["paused"]
    assert cli(settings, env, "schedules", "resume", "weekly-openai").exit_code == 0
    assert cli(settings, env, "schedules", "remove", "weekly-openai").exit_code == 0
    missing = cli(settings, env, "schedules", "pause", "weekly-openai")
    assert missing.exit_code == 2 and "no schedule named 'weekly-openai'" in missing.output
    with engine.connect() as conn:
        changes = [e.details["change"] for e in audit.list_events(conn, event="schedule.changed")]
    assert changes == ["paused", "resumed", "removed"]


def test_run_now_prints_the_export_and_exits_0(
    settings: Settings, env: dict[str, str], engine: Engine
) -> None:
    insert_executions(engine, 9)
    assert cli(settings, env, *ADD, *GOOD).exit_code == 0
    result = cli(settings, env, "schedules", "run", "weekly-openai")
    assert result.exit_code == 0, result.output
    assert "3 rows, email disabled" in result.output


def _make_due(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(schedules).values(next_run_at=utcnow() - timedelta(hours=1)))


def _scheduler(settings: Settings, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nano_export", "--db", settings.db_url, "scheduler", *args],
        env={**os.environ, **env},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_scheduler_processes_racing_on_one_due_schedule_send_one_email(
    settings: Settings, env: dict[str, str], engine: Engine, inbox: Inbox
) -> None:
    insert_executions(engine, 12)
    env = {**env, "NANO_EXPORT_SMTP_HOST": "127.0.0.1", "NANO_EXPORT_SMTP_PORT": str(inbox.port)}
    assert cli(settings, env, *ADD, *GOOD).exit_code == 0
    _make_due(engine)
    procs = [_scheduler(settings, env, "--once") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("email sent" in out for out, _err in outputs) == 1, outputs
    assert len(inbox.messages) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(exports)).scalar_one() == 1
        assert len(audit.list_events(conn, event="schedule.run")) == 1
        assert len(audit.list_events(conn, event="email.sent")) == 1


def test_scheduler_loop_runs_due_work_and_stops_cleanly_on_sigterm(
    settings: Settings, env: dict[str, str], engine: Engine
) -> None:
    insert_executions(engine, 6)
    assert cli(settings, env, *ADD, *GOOD).exit_code == 0
    _make_due(engine)
    proc = _scheduler(settings, env, "--interval", "0.2")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if audit.list_events(conn, event="schedule.run"):
                    break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    with engine.connect() as conn:
        assert len(audit.list_events(conn, event="schedule.run")) == 1
    if settings.uses_queue:  # on PostgreSQL the scheduler is a worker: schedules are its task
        assert "starting `nano-export worker`" in err and "worker stopped" in err
    else:
        assert "scheduler stopped" in err
        assert "weekly-openai: export" in out
