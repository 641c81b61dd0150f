"""The notebook client: the same engine, limits and audit as every other interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import SECRET, hold_slots, insert_executions, write_users

import nano_export
from nano_export.db import get_engine
from nano_export.errors import ExportLimitReached, PermissionDenied
from nano_export.settings import Settings


@pytest.fixture
def configured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    insert_executions(get_engine(settings.db_url), 30)
    write_users(settings.auth_file, {"ann": "analyst", "root": "admin", "vic": "viewer"})
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
