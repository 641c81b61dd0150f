"""``nano-export export``, ``exports`` and ``audit`` as a user runs them, with their exit codes."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import RECORD_FIELDS, SECRET, insert_executions, write_users
from openpyxl import load_workbook
from sqlalchemy import select, update

from nano_export import jobs
from nano_export.cli import main
from nano_export.db import get_engine, utcnow
from nano_export.schema import executions, exports
from nano_export.settings import Settings

USERS = {"ann": "admin", "ana": "analyst", "vic": "viewer"}


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a configured installation with 90 executions and three users."""
    insert_executions(get_engine(settings.db_url), 90)
    write_users(settings, USERS)
    values = {
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_DATABASE_URL": settings.db_url,
        "NANO_EXPORT_SECRET_KEY": settings.secret_key,
        "NANO_EXPORT_CHUNK_ROWS": "30",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if result.exit_code:
        print(result.stderr)
    return result.exit_code, result.stdout, result.stderr


def test_export_writes_the_file_and_prints_its_row_count(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    code, stdout, _ = run(
        "export", "evaluation-results", "--user", "ana", "--out", str(out), "--model", "gpt-5-mini"
    )
    assert code == 0
    assert f"{out}: 30 rows" in stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == 30
    assert {r["model"] for r in rows} == {"gpt-5-mini"}
    assert all(SECRET not in r["prompt"] for r in rows)


#: Run the CLI in a fresh interpreter and list which of the heavy modules it loaded.
_LOADED = """
import sys
from nano_export.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, f"exit {exc.code}"
print(sorted(m for m in ("pandas", "pyarrow.dataset", "nano_export.columnar") if m in sys.modules))
"""


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "jsonl", "parquet", "xlsx"])
def test_an_export_process_loads_neither_pandas_nor_pyarrow_dataset(
    env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    """The engine reads, redacts and writes in Arrow: a CLI export never imports pandas (about
    40 MB of the process), nor ``pyarrow.dataset`` (ADBC's DB-API module pulls it in, with
    pandas), nor Explore's columns (the hint about unknown models is a SQL lookup)."""
    out = tmp_path / f"results.{fmt}"
    args = ["export", "evaluation-results", "--user", "ana", "--out", str(out), "--format", fmt]
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, *args, "--model", "gpt-5-mini"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert f"{out}: 30 rows" in proc.stdout


def test_columns_renames_gzip_and_excel_shape_the_file(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "m.csv.gz"
    code, _, _ = run(
        "export",
        "performance-metrics",
        "--user",
        "ana",
        "--out",
        str(out),
        "--columns",
        "model,cost_usd,execution_id",
        "--rename",
        "cost_usd=cost",
        "--gzip",
        "--excel",
        "--where",
        "execution_id <= 3",
    )
    assert code == 0
    text = gzip.decompress(out.read_bytes()).decode("utf-8")
    assert text.startswith("\ufeffmodel,cost,execution_id\r\n")
    assert text.count("\r\n") == 4


def test_several_datasets_write_one_file_each(env: dict[str, str], tmp_path: Path) -> None:
    code, stdout, _ = run(
        "export",
        "evaluation-results",
        "agent-interactions",
        "--user",
        "ann",
        "--out",
        str(tmp_path / "both"),
        "--privacy",
        "full",
        "--failed",
    )
    assert code == 0
    files = sorted((tmp_path / "both").iterdir())
    assert len(files) == 2
    assert "agent-interactions" in stdout and "evaluation-results" in stdout


def test_dry_run_prints_count_and_size_and_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    os.chdir(work)
    code, stdout, _ = run("export", "evaluation-results", "--user", "ana", "--dry-run", "--success")
    assert code == 0
    assert stdout.startswith("evaluation-results: 78 rows, about ")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--where", "cost_usd > 'x'"], 2, "cost_usd"),
        (["--where", "nope = 1"], 2, "unknown column 'nope'"),
        (["--since", "2025-13-01"], 2, "--since"),
        (["--since", "2025-09-01", "--until", "2025-08-01"], 2, "after"),
        (["--columns", "model,bogus"], 2, "bogus"),
        (["--rename", "model"], 2, "OLD=NEW"),
        (["--privacy", "full"], 3, "analyst"),
    ],
)
def test_bad_input_and_refusals_exit_with_the_documented_codes(
    env: dict[str, str], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    out = tmp_path / "x.csv"
    got, _, stderr = run("export", "evaluation-results", "--user", "ana", "--out", str(out), *args)
    assert got == code
    assert message in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--success", "--failed"], ["--failed", "--success"]])
def test_success_and_failed_together_are_bad_input_and_export_nothing(
    env: dict[str, str], tmp_path: Path, flags: list[str]
) -> None:
    out = tmp_path / "x.csv"
    code, stdout, stderr = run(
        "export", "evaluation-results", "--user", "ana", "--out", str(out), *flags
    )
    assert code == 2
    assert "--success" in stderr and "--failed" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    assert not out.exists()
    with get_engine(env["NANO_EXPORT_DATABASE_URL"]).connect() as conn:
        assert conn.execute(select(exports.c.id)).first() is None


@pytest.mark.parametrize(
    ("name", "flags", "hint"),
    [("x.csv", ["--gzip"], "x.csv.gz"), ("x.csv.gz", [], "--gzip"), ("x.gz", [], "--gzip")],
)
def test_an_out_file_name_must_say_whether_it_is_gzip(
    env: dict[str, str], tmp_path: Path, name: str, flags: list[str], hint: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / name
    code, _stdout, stderr = run(
        "export", "evaluation-results", "--user", "ana", "--out", str(out), *flags
    )
    assert code == 2, stderr
    assert name in stderr and hint in stderr and "Traceback" not in stderr
    assert not list(folder.iterdir())
    with get_engine(env["NANO_EXPORT_DATABASE_URL"]).connect() as conn:
        assert conn.execute(select(exports.c.id)).first() is None


def test_dry_run_checks_the_role_too(env: dict[str, str]) -> None:
    code, stdout, stderr = run(
        "export", "evaluation-results", "--user", "vic", "--privacy", "full", "--dry-run"
    )
    assert code == 3
    assert stdout == ""
    assert "viewer" in stderr


def test_several_datasets_into_an_existing_file_is_bad_input(
    env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "exists.csv"
    target.write_text("keep me")
    code, _, stderr = run(
        "export",
        "evaluation-results",
        "performance-metrics",
        "--user",
        "ana",
        "--out",
        str(target),
    )
    assert code == 2
    assert "several datasets need a folder" in stderr
    assert target.read_text() == "keep me"
    code, _, _ = run(
        "export",
        "evaluation-results",
        "performance-metrics",
        "--user",
        "ana",
        "--out",
        str(tmp_path / "new.csv"),
    )
    assert code == 2
    assert not (tmp_path / "new.csv").exists()


def test_a_viewer_exports_public_by_default(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "v.csv"
    code, _, _ = run("export", "evaluation-results", "--user", "vic", "--out", str(out))
    assert code == 0
    assert "prompt" not in out.read_text().splitlines()[0]


def test_commands_in_the_wrong_folder_say_so_and_create_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("NANO_EXPORT_DATA_DIR", str(elsewhere))
    monkeypatch.delenv("NANO_EXPORT_DATABASE_URL", raising=False)
    for args in (["exports", "list"], ["audit"], ["exports", "prune"]):
        code, _, stderr = run(*args)
        assert code == 2, args
        assert "no nano-export database" in stderr and "nano-export init" in stderr
        assert "Traceback" not in stderr
    assert not (elsewhere / "nano-export.db").exists()


def test_config_never_shows_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANO_EXPORT_DATABASE_URL", "postgresql+psycopg://app:S3cretPw@db/nano")
    code, stdout, _ = run("config")
    assert code == 0
    assert "S3cretPw" not in stdout
    assert "postgresql+psycopg://app:***@db/nano" in stdout


def test_an_unknown_user_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    code, _, stderr = run("export", "evaluation-results", "--user", "mallory", "--dry-run")
    assert code == 3
    assert "users add" in stderr


def test_exports_list_json_has_the_api_fields(env: dict[str, str], tmp_path: Path) -> None:
    run("export", "performance-metrics", "--user", "ana", "--out", str(tmp_path / "a.csv"))
    code, stdout, _ = run("exports", "list", "--json", "--user", "ana")
    assert code == 0
    records = json.loads(stdout)
    assert len(records) == 1
    assert set(records[0]) == RECORD_FIELDS
    assert records[0]["rows_done"] == 90
    code, stdout, _ = run("exports", "list")
    assert records[0]["id"] in stdout
    assert "format" in stdout.splitlines()[0] and " csv " in stdout


def test_audit_json_lists_events_with_actor_and_time(env: dict[str, str], tmp_path: Path) -> None:
    run("export", "performance-metrics", "--user", "ana", "--out", str(tmp_path / "a.csv"))
    run(
        "export",
        "performance-metrics",
        "--user",
        "vic",
        "--privacy",
        "standard",
        "--out",
        str(tmp_path / "b.csv"),
    )
    code, stdout, _ = run("audit", "--json", "--since", "2020-01-01")
    assert code == 0
    events = json.loads(stdout)
    assert [e["event"] for e in events] == [
        "export.requested",
        "export.started",
        "export.succeeded",
        "export.denied",
    ]
    assert events[-1]["actor"] == "vic" and "viewer" in events[-1]["reason"]
    assert all("at" in e for e in events)
    code, stdout, _ = run("audit")
    assert "export.denied" in stdout


def test_prune_and_cancel_report_what_they_did(env: dict[str, str]) -> None:
    code, stdout, _ = run("exports", "prune")
    assert code == 0 and "0 export(s) expired" in stdout
    code, _, stderr = run("exports", "cancel", "nope")
    assert code == 2 and "no export nope" in stderr


BARRIER = """
import os, sys, time
from pathlib import Path
from nano_export.cli import main
go = Path(sys.argv[1])
Path(f"{go}.ready.{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.005)
main(sys.argv[2:], prog_name="nano-export")
"""


def _spawn(env: dict[str, str], args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", BARRIER, *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_four_concurrent_exports_of_one_user_give_exactly_one_refusal(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    insert_executions(get_engine(settings.db_url), 2_000, first_id=1_000)
    go = tmp_path / "go"
    procs = [
        _spawn(
            {**env, "NANO_EXPORT_CHUNK_ROWS": "100"},
            [
                str(go),
                "export",
                "evaluation-results",
                "--user",
                "ana",
                "--out",
                str(tmp_path / f"{n}.csv"),
            ],
            tmp_path,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 120  # every process has imported the package and waits
    while len(list(tmp_path.glob("go.ready.*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    results = [(p.wait(timeout=180), p.stderr.read().decode() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 0, 0, 4], results
    refused = next(err for code, err in results if code == 4)
    assert "at once" in refused
    assert len(list(tmp_path.glob("*.csv"))) == 3


def test_kill_9_mid_export_leaves_no_file_and_the_export_is_failed(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    engine = get_engine(settings.db_url)
    insert_executions(engine, 6_000, first_id=1_000)
    out = tmp_path / "big.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nano_export",
            "export",
            "evaluation-results",
            "--user",
            "ana",
            "--out",
            str(out),
        ],
        env={**os.environ, **env, "NANO_EXPORT_CHUNK_ROWS": "100"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(select(exports.c.id, exports.c.rows_done)).first()
            if row is not None and row.rows_done > 0:
                break
            time.sleep(0.05)
        assert row is not None and row.rows_done > 0, "the export never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not out.exists()
    assert list(tmp_path.glob(".big.csv.*.part")), "the dead worker's temporary file is there"
    later = utcnow() + timedelta(seconds=settings.heartbeat_timeout_s + 1)
    assert jobs.reap_stale(engine, settings, now=later) == 1
    rec = jobs.get_export(engine, export_id=row.id, user="ana", role="analyst")
    assert rec.status == "failed"
    assert not out.exists()
    assert not list(tmp_path.glob(".big.csv.*.part"))
    # the slot is free again: the user can export at once
    code, _, _ = run(
        "export",
        "performance-metrics",
        "--user",
        "ana",
        "--out",
        str(tmp_path / "s.csv"),
        "--where",
        "execution_id <= 10",
    )
    assert code == 0


def test_a_kill_9_export_shows_failed_in_exports_list_without_a_new_export(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    engine = get_engine(settings.db_url)
    insert_executions(engine, 6_000, first_id=1_000)
    child_env = {**os.environ, **env, "NANO_EXPORT_CHUNK_ROWS": "100"}
    child_env["NANO_EXPORT_HEARTBEAT_TIMEOUT_S"] = "5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nano_export", "export", "evaluation-results", "--user", "ana"],
        env=child_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(select(exports.c.id, exports.c.rows_done)).first()
            if row is not None and row.rows_done > 0:
                break
            time.sleep(0.05)
        assert row is not None and row.rows_done > 0, "the export never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    killed = time.monotonic()
    listed: list[dict[str, object]] = []
    while time.monotonic() - killed < 30:
        done = subprocess.run(
            [sys.executable, "-m", "nano_export", "exports", "list", "--json"],
            env=child_env,
            cwd=tmp_path,
            capture_output=True,
            check=True,
        )
        listed = json.loads(done.stdout)
        if listed[0]["status"] == "failed":
            break
        assert listed[0]["status"] == "running"
        time.sleep(0.5)
    assert [r["status"] for r in listed] == ["failed"]  # the one export; no new one started
    assert "no heartbeat for 5 s" in str(listed[0]["error"])
    assert time.monotonic() - killed < 5 + 10


def test_a_filter_value_no_run_has_gets_a_hint_and_still_runs(env: dict[str, str]) -> None:
    code, stdout, stderr = run(
        "export", "evaluation-results", "--user", "ana", "--provider", "opneai",
        "--model", "gpt-5-mini", "--dry-run",
    )  # fmt: skip
    assert code == 0
    assert "evaluation-results: 0 rows" in stdout
    assert "no run has provider 'opneai'" in stderr and "did you mean 'openai'?" in stderr
    assert "model" not in stderr  # gpt-5-mini exists: no hint for it


@pytest.mark.parametrize(
    ("status", "error", "line"),
    [
        ("cancelled", "cancelled", "export of evaluation-results was cancelled"),
        ("failed", "disk full", "export of evaluation-results failed: disk full"),
    ],
)
def test_an_export_that_did_not_finish_says_so_once(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, status: str, error: str, line: str
) -> None:
    from factories import insert_export

    from nano_export import jobs

    engine = get_engine(env["NANO_EXPORT_DATABASE_URL"])
    export_id = insert_export(engine, owner="ana", status=status, error=error)
    record = jobs.get_export(engine, export_id=export_id, user="ana", role="analyst")
    monkeypatch.setattr(jobs, "submit_export", lambda *_a, **_k: record)
    code, _, stderr = run("export", "evaluation-results", "--user", "ana")
    assert code == 1
    assert f"Error: {line}\n" in stderr
    assert stderr.count(status) == 1  # not "cancelled: cancelled"


def test_format_writes_each_file_type_with_its_extension(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run("export", "performance-metrics", "--user", "ana", "--format", "parquet")
    assert code == 0, stdout
    (parquet,) = tmp_path.glob("performance-metrics-*.parquet")
    assert pq.read_metadata(parquet).num_rows == 90
    out = tmp_path / "m.xlsx"
    code, stdout, _ = run(
        "export", "performance-metrics", "--user", "ana", "--format", "xlsx", "--out", str(out)
    )
    assert code == 0 and f"{out}: 90 rows" in stdout
    assert load_workbook(out, read_only=True).active.max_row == 91
    out = tmp_path / "m.jsonl.gz"
    code, stdout, _ = run(
        "export", "performance-metrics", "--user", "ana", "--format", "jsonl", "--gzip",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, stdout
    lines = gzip.decompress(out.read_bytes()).decode("utf-8").splitlines()
    assert len(lines) == 90 and json.loads(lines[0])["execution_id"] == 1


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--format", "xlsx", "--gzip"], "compressed already"),
        (["--format", "parquet", "--excel"], "--format xlsx"),
        (["--format", "xlsx", "--out", "{folder}/x.csv"], ".xlsx"),
        (["--format", "parquet", "--out", "{folder}/x.jsonl"], ".parquet"),
        (["--format", "bogus"], "parquet"),
    ],
)
def test_formats_that_do_not_fit_the_options_or_the_file_name_are_refused(
    env: dict[str, str], tmp_path: Path, args: list[str], hint: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    code, _stdout, stderr = run(
        "export", "evaluation-results", "--user", "ana",
        *[a.format(folder=folder) for a in args],
    )  # fmt: skip
    assert code == 2, stderr
    assert hint in stderr and "Traceback" not in stderr
    assert not list(folder.iterdir())


def test_dry_run_of_a_workbook_says_how_many_sheets(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANO_EXPORT_XLSX_SHEET_ROWS", "40")
    code, stdout, _ = run(
        "export", "evaluation-results", "--user", "ana", "--dry-run", "--format", "xlsx"
    )
    assert code == 0
    assert stdout.startswith("evaluation-results: 90 rows, about ")
    assert "3 sheets of xlsx" in stdout


def test_cut_cells_are_reported_as_a_note(env: dict[str, str], tmp_path: Path) -> None:
    engine = get_engine(env["NANO_EXPORT_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id <= 2).values(response="y" * 40_000))
    out = tmp_path / "w.xlsx"
    code, _stdout, stderr = run(
        "export", "evaluation-results", "--user", "ana", "--format", "xlsx", "--out", str(out)
    )
    assert code == 0
    assert "Note: 2 cells were longer than Excel's 32,767-character limit" in stderr
    rec = jobs.list_exports(engine)[0]
    assert rec.truncated_cells == 2 and rec.sheets == 1
