"""Users file (streamlit-authenticator format) and the ``users`` command."""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
import pytest
import yaml
from click.testing import CliRunner

from nano_export import auth
from nano_export.audit import list_events
from nano_export.cli import main
from nano_export.db import get_engine
from nano_export.errors import BadInput
from nano_export.settings import Settings


def test_add_user_creates_private_file_with_bcrypt_hash_and_role(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "auth.yaml"
    auth.add_user(path, username="Alice", role="analyst", password="s3cret!", email="a@x.org")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    entry = data["credentials"]["usernames"]["alice"]
    assert entry["roles"] == ["analyst"]
    assert entry["email"] == "a@x.org"
    assert bcrypt.checkpw(b"s3cret!", entry["password"].encode())
    assert "s3cret!" not in path.read_text()
    assert data["cookie"] == {"name": "nano_export_auth", "expiry_days": 30.0}
    assert "key" not in data["cookie"]


def test_load_users_and_role_of_are_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    auth.add_user(path, username="bob", role="admin", password="pw")
    auth.add_user(path, username="carol", role="viewer", password="pw")

    users = auth.load_users(path)
    assert set(users) == {"bob", "carol"}
    assert users["bob"].role == "admin"
    assert auth.role_of(path, "BOB") == "admin"
    assert auth.role_of(path, "carol") == "viewer"
    assert auth.role_of(path, "nobody") is None
    assert auth.check_password(path, "Bob", "pw")
    assert not auth.check_password(path, "bob", "wrong")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "alice", "role": "analyst", "password": "x"}, "already exists"),
        ({"username": "dave", "role": "owner", "password": "x"}, "unknown role"),
        ({"username": "dave", "role": "viewer", "password": ""}, "must not be empty"),
        ({"username": "  ", "role": "viewer", "password": "x"}, "user name is required"),
    ],
)
def test_add_user_refuses_bad_input(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    path = tmp_path / "auth.yaml"
    auth.add_user(path, username="alice", role="analyst", password="pw")
    before = path.read_text()
    with pytest.raises(BadInput, match=message):
        auth.add_user(path, **kwargs)  # type: ignore[arg-type]
    assert path.read_text() == before


def test_highest_role_wins_and_cookie_settings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "credentials": {
                    "usernames": {
                        "eve": {"name": "Eve", "password": "x", "roles": ["viewer", "admin"]},
                        "ghost": {"name": "G", "password": "x", "roles": ["superuser"]},
                    }
                },
                "cookie": {"name": "other_cookie", "expiry_days": 2},
            }
        )
    )
    assert auth.role_of(path, "eve") == "admin"
    assert "ghost" not in auth.load_users(path)
    assert auth.cookie_name(path) == "other_cookie"
    assert auth.cookie_expiry_days(path) == 2.0
    assert auth.cookie_name(tmp_path / "missing.yaml") == "nano_export_auth"


def test_authenticator_credentials_is_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    auth.add_user(path, username="alice", role="analyst", password="pw")
    creds = auth.authenticator_credentials(path)
    creds["usernames"]["alice"]["password"] = "mutated"
    assert auth.load_users(path)["alice"].password_hash != "mutated"


def _env(settings: Settings) -> dict[str, str]:
    return {
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_DATABASE_URL": settings.db_url,
        "NANO_EXPORT_SECRET_KEY": "k" * 40,
    }


def test_users_add_cli_reads_stdin_lowercases_and_audits(settings: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["users", "add", "Frank", "--role", "analyst", "--email", "f@x.org", "--password-stdin"],
        input="hunter2\n",
        env=_env(settings),
    )
    assert result.exit_code == 0, result.output
    assert auth.check_password(settings.auth_file, "frank", "hunter2")
    with get_engine(settings.db_url).connect() as conn:
        events = list_events(conn, event="user.created")
    assert [(e.actor, e.interface, e.details["role"]) for e in events] == [
        ("frank", "cli", "analyst")
    ]

    listed = runner.invoke(main, ["users", "list"], env=_env(settings))
    assert listed.exit_code == 0
    assert "frank" in listed.output and "analyst" in listed.output


def test_users_add_cli_prompts_twice_and_refuses_duplicates(settings: Settings) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        main, ["users", "add", "gina", "--role", "viewer"], input="pw1\npw1\n", env=_env(settings)
    )
    assert ok.exit_code == 0, ok.output
    assert auth.check_password(settings.auth_file, "gina", "pw1")

    dup = runner.invoke(
        main,
        ["users", "add", "GINA", "--role", "admin", "--password-stdin"],
        input="x\n",
        env=_env(settings),
    )
    assert dup.exit_code == 2
    assert "already exists" in dup.output
    assert auth.role_of(settings.auth_file, "gina") == "viewer"


def test_users_add_cli_rejects_empty_password_with_exit_code_2(settings: Settings) -> None:
    result = CliRunner().invoke(
        main,
        ["users", "add", "hank", "--role", "viewer", "--password-stdin"],
        input="\n",
        env=_env(settings),
    )
    assert result.exit_code == 2
    assert "must not be empty" in result.output
    assert auth.role_of(settings.auth_file, "hank") is None
