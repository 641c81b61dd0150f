"""The notebook client: the same engine, limits and audit as every other interface."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import SECRET, hold_slots, insert_executions, write_users
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import nano_export
from nano_export.db import get_engine
from nano_export.errors import BadInput, ExportLimitReached, PermissionDenied
from nano_export.exporter import plan_export
from nano_export.models import ExportRequest
from nano_export.parquetfmt import read_manifest
from nano_export.settings import Settings


@pytest.fixture
def configured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    insert_executions(get_engine(settings.db_url), 30)
    write_users(settings, {"ann": "analyst", "root": "admin", "vic": "viewer"})
    monkeypatch.setenv("NANO_EXPORT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NANO_EXPORT_SECRET_KEY", settings.secret_key)
    return settings


def test_count_preview_and_export_for_an_analyst(configured: Settings, tmp_path: Path) -> None:
    nx = nano_export.connect(configured.db_url, user="Ann")
    assert repr(nx) == "<nano_export.Client user='ann' role='analyst'>"
    assert nx.count("evaluation-results") == 30
    assert nx.count("evaluation-results", provider=["openai"], success=True) == 9
    df = nx.preview("evaluation-results", where="execution_id = 10", limit=5)
    assert list(df["execution_id"]) == [10]
    assert SECRET not in df["prompt"].iloc[0]
    assert "[EMAIL]" in df["prompt"].iloc[0]
    record = nx.export("performance-metrics", out=tmp_path / "m.csv", model=["gpt-5-mini"])
    assert record.status == "succeeded" and record.rows_done == 10
    assert (tmp_path / "m.csv").is_file()
    assert [r.id for r in nx.exports()] == [record.id]


def test_roles_bound_what_a_notebook_may_see(configured: Settings) -> None:
    vic = nano_export.connect(configured.db_url, user="vic")
    assert vic.default_privacy == "public"
    assert "prompt" not in vic.preview("evaluation-results").columns
    with pytest.raises(PermissionDenied):
        vic.preview("evaluation-results", privacy="full")
    with pytest.raises(PermissionDenied, match="admins"):
        vic.audit()
    root = nano_export.connect(configured.db_url, user="root")
    root.export("performance-metrics", gzip=True)
    assert [e.event for e in root.audit()][-1] == "export.succeeded"


def test_unknown_users_are_refused_where_a_users_file_exists(configured: Settings) -> None:
    with pytest.raises(PermissionDenied, match="unknown user"):
        nano_export.connect(configured.db_url, user="nobody")
    with pytest.raises(PermissionDenied, match="unknown user"):
        nano_export.connect(configured.db_url, user="mallory", role="admin")
    with pytest.raises(PermissionDenied, match="has role 'analyst'"):
        nano_export.connect(configured.db_url, user="ann", role="admin")


def test_without_a_users_file_the_role_must_be_given(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANO_EXPORT_DATA_DIR", str(settings.data_dir))
    with pytest.raises(PermissionDenied, match="pass role"):
        nano_export.connect(settings.db_url, user="me")
    me = nano_export.connect(settings.db_url, user="me", role="viewer")
    assert me.role == "viewer"


def test_a_refused_preview_is_audited(configured: Settings) -> None:
    vic = nano_export.connect(configured.db_url, user="vic")
    with pytest.raises(PermissionDenied):
        vic.preview("evaluation-results", privacy="standard")
    root = nano_export.connect(configured.db_url, user="root")
    denied = [e for e in root.audit() if e.event == "export.denied"]
    assert [(e.actor, e.interface) for e in denied] == [("vic", "notebook")]


def test_notebook_exports_count_against_the_same_limit(configured: Settings) -> None:
    nx = nano_export.connect(configured.db_url, user="ann")
    limited = nx.settings.model_copy(update={"max_concurrent_exports": 1})
    nx.settings = limited
    hold_slots(nx.engine, "ann", 1)
    with pytest.raises(ExportLimitReached):
        nx.export("performance-metrics")


def test_the_package_exposes_connect_lazily() -> None:
    assert nano_export.Client.__name__ == "Client"
    with pytest.raises(AttributeError):
        nano_export.nothing_here  # noqa: B018


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no nano-export data and no NANO_EXPORT_* location settings."""
    for name in ("DATA_DIR", "DATABASE_URL", "AUTH_FILE", "EXPORT_DIR"):
        monkeypatch.delenv(f"NANO_EXPORT_{name}", raising=False)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_connecting_to_a_missing_sqlite_file_says_so_and_creates_nothing(elsewhere: Path) -> None:
    with pytest.raises(BadInput, match=r"no nano-export database at sqlite:///nope/x\.db") as info:
        nano_export.connect("sqlite:///nope/x.db", user="ann")
    assert "nano-export init" in str(info.value)
    absolute = elsewhere / "other" / "y.db"
    with pytest.raises(BadInput, match="no nano-export database"):
        nano_export.connect(f"sqlite:///{absolute}", user="ann", role="analyst")
    assert list(elsewhere.iterdir()) == []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def schemaless_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists but has no nano-export schema: an empty SQLite file, a new PG db."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()
        yield f"sqlite:///{path}"
        return
    server: str = request.getfixturevalue("pg_server_url")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"nano_export_empty_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_connecting_to_a_database_without_the_schema_says_so(
    schemaless_url: str, elsewhere: Path
) -> None:
    with pytest.raises(BadInput, match=r"no nano-export database at .*nano-export init"):
        nano_export.connect(schemaless_url, user="ann", role="analyst")


@pytest.mark.postgres
def test_connecting_to_a_postgres_database_that_does_not_exist_says_so(
    pg_server_url: str, elsewhere: Path
) -> None:
    name = f"nano_export_missing_{uuid.uuid4().hex[:8]}"
    missing = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    with pytest.raises(BadInput, match=r"cannot connect to .*does not exist"):
        nano_export.connect(missing, user="ann", role="viewer")


def test_a_single_name_is_accepted_where_a_list_is(configured: Settings) -> None:
    nx = nano_export.connect(configured.db_url, user="ann")
    assert nx.count("evaluation-results", provider="openai", success=True) == 9
    assert nx.count("evaluation-results", provider="openai") == nx.count(
        "evaluation-results", provider=["openai"]
    )
    assert nx.count("evaluation-results", model="gpt-5-mini", test="test_1") == nx.count(
        "evaluation-results", model=["gpt-5-mini"], test=["test_1"]
    )
    df = nx.preview("evaluation-results", model="gpt-5-mini", limit=50)
    assert set(df["model"]) == {"gpt-5-mini"}


def test_an_unknown_filter_keyword_names_it_and_the_known_ones(configured: Settings) -> None:
    nx = nano_export.connect(configured.db_url, user="ann")
    with pytest.raises(BadInput, match="unknown filter 'provder'") as info:
        nx.count("evaluation-results", provder=["openai"])
    message = str(info.value)
    for name in ("provider", "model", "test", "since", "until", "success", "where"):
        assert name in message
    assert "Extra inputs" not in message
    with pytest.raises(BadInput, match="unknown filter 'sucess'; did you mean 'success'"):
        nx.preview("evaluation-results", sucess=True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"success": "maybe"}, "success"),
        ({"provider": [1]}, "provider"),
        ({"privacy": "secret"}, "privacy"),
    ],
)
def test_invalid_values_raise_a_readable_bad_input(
    configured: Settings, kwargs: dict[str, object], field: str
) -> None:
    nx = nano_export.connect(configured.db_url, user="ann")
    with pytest.raises(BadInput) as info:
        nx.preview("evaluation-results", **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert field in message
    assert "validation error" not in message and "pydantic" not in message
    assert "\n" not in message


def test_a_selection_gives_the_redacted_rows_without_a_file(
    configured: Settings, tmp_path: Path
) -> None:

    nx = nano_export.connect(configured.db_url, user="ann")
    sel = nx.select("evaluation-results", provider="openai", rename={"model": "llm"})
    assert sel.count() == 10
    table = sel.to_arrow()
    assert table.num_rows == 10 and "llm" in table.column_names
    assert table.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    frame = sel.to_pandas()
    assert len(frame) == 10 and not any(SECRET in p for p in frame["prompt"])
    assert list(configured.export_dir.glob("*")) == []  # no file was written
    # The same rows as the Parquet export of the same spec.
    plan = plan_export(
        ExportRequest(
            dataset="evaluation-results",
            filters={"provider": ["openai"]},  # type: ignore[arg-type]
            rename={"model": "llm"},
        )
    )
    out = tmp_path / "same.parquet"
    record = sel.export(out, format="parquet")
    assert record.status == "succeeded" and read_manifest(out)["columns"] == plan.output_names
    assert pq.read_table(out).equals(table)
    events = nano_export.connect(configured.db_url, user="root").audit()
    assert any(e.details.get("in_memory") and e.rows == 10 for e in events)
    empty = nx.select("evaluation-results", provider="nobody").to_pandas()
    assert empty.empty and "model" in empty.columns


def test_notebook_export_formats_and_the_gzip_shorthand(
    configured: Settings, tmp_path: Path
) -> None:
    nx = nano_export.connect(configured.db_url, user="ann")
    rec = nx.export("performance-metrics", format="jsonl", gzip=True)
    assert rec.format == "jsonl.gz" and rec.file_name.endswith(".jsonl.gz")
    rec = nx.export("performance-metrics", format="xlsx", out=tmp_path / "m.xlsx")
    assert rec.status == "succeeded" and (tmp_path / "m.xlsx").is_file()
    with pytest.raises(BadInput, match="compressed already"):
        nx.export("performance-metrics", format="parquet", gzip=True)
    with pytest.raises(BadInput, match="format"):
        nx.export("performance-metrics", format="xml")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="unknown column"):
        nx.select("performance-metrics", columns=["nope"])


def test_to_arrow_reads_again_on_read_sql_when_the_native_reader_gives_up(
    configured: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nano_export import sqlitearrow

    if not configured.db_url.startswith("sqlite"):
        pytest.skip("the native reader that gives up is SQLite's")
    tried: list[int] = []

    def gives_up(*args, **kwargs):  # type: ignore[no-untyped-def]
        tried.append(1)
        raise sqlitearrow.NativeReadError("SQLite: Type mismatch in column 3")
        yield  # a generator, as the reader is

    monkeypatch.setattr(sqlitearrow, "read_batches", gives_up)
    nx = nano_export.connect(configured.db_url, user="ann")
    table = nx.select("evaluation-results", provider="openai").to_arrow()
    assert tried == [1] and table.num_rows == 10
