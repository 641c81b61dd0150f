"""Settings: defaults, overrides from the environment, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from nano_export import keystore
from nano_export.bootstrap import initialize
from nano_export.errors import InvalidSetting
from nano_export.settings import describe, get_settings


def test_defaults_put_everything_under_the_data_folder(tmp_path: Path) -> None:
    s = get_settings(data_dir=tmp_path)
    assert s.export_dir == tmp_path / "exports"
    assert s.auth_file == tmp_path / "auth.yaml"
    assert s.db_url == f"sqlite:///{tmp_path / 'nano-export.db'}"
    assert s.max_concurrent_exports == 3
    assert s.query_timeout_s == 30


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANO_EXPORT_CHUNK_ROWS", "1234")
    monkeypatch.setenv("NANO_EXPORT_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    s = get_settings()
    assert s.chunk_rows == 1234
    assert s.db_url == "postgresql+psycopg://u@127.0.0.1/db"


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("NANO_EXPORT_MAX_CONCURRENT_EXPORTS", "0"),
        ("NANO_EXPORT_CHUNK_ROWS", "many"),
        ("NANO_EXPORT_DATABASE_URL", "not a url"),
        ("NANO_EXPORT_BASE_URL", "example.org"),
        ("NANO_EXPORT_QUERY_TIMEOUT_S", "0"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(InvalidSetting, match=env):
        get_settings()


def test_describe_masks_secrets_and_gives_every_setting_a_help_line(tmp_path: Path) -> None:
    s = get_settings(data_dir=tmp_path, secret_key="supersecret" * 3, smtp_password="hunter2")
    rows = describe(s)
    shown = {env: value for env, value, _ in rows}
    assert shown["NANO_EXPORT_SECRET_KEY"] == "********"
    assert shown["NANO_EXPORT_SMTP_PASSWORD"] == "********"
    assert all(help_ for _, _, help_ in rows)
    assert "supersecret" not in repr(rows)


def test_a_generated_secret_is_kept_in_the_database_and_reused(tmp_path: Path) -> None:
    s = get_settings(data_dir=tmp_path)
    initialize(s)
    first = s.resolved_secret()
    assert len(first) == 64
    keystore.forget()
    assert get_settings(data_dir=tmp_path).resolved_secret() == first
    assert not (tmp_path / "secret.key").exists()
