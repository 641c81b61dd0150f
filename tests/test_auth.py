"""Users in the database, the ``users`` commands, the import of an older users file, the secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import bcrypt
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, select

from nano_export import auth, keystore, sessions, tokens
from nano_export.audit import list_events
from nano_export.bootstrap import initialize
from nano_export.cli import main
from nano_export.db import get_engine
from nano_export.errors import BadInput
from nano_export.schema import users
from nano_export.settings import Settings, get_settings

PW = "a-long-enough-pw"


def _add(engine: Engine, name: str, role: str = "analyst", password: str = PW) -> auth.UserInfo:
    return auth.add_user(engine, username=name, role=role, password=password, rounds=4)


def test_add_user_stores_a_bcrypt_hash_and_role_in_the_database(engine: Engine) -> None:
    user = auth.add_user(
        engine, username="Alice", role="analyst", password=PW, email="a@x.org", rounds=4
    )
    with engine.connect() as conn:
        row = conn.execute(select(users)).mappings().one()
    assert (row["username"], row["role"], row["email"]) == ("alice", "analyst", "a@x.org")
    assert row["id"] == user.id and len(user.id) == 32
    assert bcrypt.checkpw(PW.encode(), row["password_hash"].encode())
    assert PW not in str(dict(row))


def test_load_users_role_of_and_verify_password_are_case_insensitive(engine: Engine) -> None:
    _add(engine, "bob", "admin")
    _add(engine, "carol", "viewer")
    assert set(auth.load_users(engine)) == {"bob", "carol"}
    assert auth.role_of(engine, "BOB") == "admin"
    assert auth.role_of(engine, "nobody") is None
    assert auth.verify_password(engine, "Bob", PW, rounds=4) is not None
    assert auth.verify_password(engine, "bob", "wrong-password", rounds=4) is None
    assert auth.verify_password(engine, "nobody", PW, rounds=4) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "alice", "role": "analyst", "password": PW}, "already exists"),
        ({"username": "dave", "role": "owner", "password": PW}, "unknown role"),
        ({"username": "dave", "role": "viewer", "password": ""}, "must not be empty"),
        ({"username": "dave", "role": "viewer", "password": "x"}, "at least 12 characters"),
        ({"username": "dave", "role": "viewer", "password": "é" * 40}, "at most 72 bytes"),
        ({"username": "  ", "role": "viewer", "password": PW}, "user name is required"),
        ({"username": "d ave", "role": "viewer", "password": PW}, "must not contain spaces"),
        ({"username": "ad\u200bmin", "role": "viewer", "password": PW}, "invisible"),
        ({"username": "\u0430dmin", "role": "viewer", "password": PW}, "mixes scripts"),
        ({"username": "a<b>", "role": "viewer", "password": PW}, "only letters"),
    ],
)
def test_add_user_refuses_weak_or_confusable_input(
    engine: Engine, kwargs: dict[str, str], message: str
) -> None:
    _add(engine, "alice")
    with pytest.raises(BadInput, match=message):
        auth.add_user(engine, rounds=4, **kwargs)  # type: ignore[arg-type]
    assert set(auth.load_users(engine)) == {"alice"}


def test_user_names_are_nfkc_normalised(engine: Engine) -> None:
    user = _add(engine, "ｊｏｅ")  # fullwidth letters
    assert user.username == "joe"
    assert auth.role_of(engine, "JOE") == "analyst"


def test_passwords_are_stripped_alike_at_add_and_at_login(engine: Engine) -> None:
    _add(engine, "sam", password="  spaced password  ")
    assert auth.verify_password(engine, "sam", "spaced password", rounds=4) is not None
    assert auth.verify_password(engine, "sam", "  spaced password  ", rounds=4) is not None


def test_removing_and_re_adding_a_name_gives_a_new_id(engine: Engine) -> None:
    first = _add(engine, "rex")
    auth.remove_user(engine, username="rex", actor="test")
    second = _add(engine, "rex")
    assert first.id != second.id


def test_authenticator_credentials_come_from_the_table(engine: Engine) -> None:
    _add(engine, "alice")
    creds = auth.authenticator_credentials(engine)
    assert creds["usernames"]["alice"]["roles"] == ["analyst"]
    assert creds["usernames"]["alice"]["password"].startswith("$2")


# --- the older YAML users file -------------------------------------------------------------------


def _yaml_file(path: Path) -> Path:
    hashed = bcrypt.hashpw(b"old-password", bcrypt.gensalt(rounds=4)).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "credentials": {
                    "usernames": {
                        "eve": {"name": "Eve", "password": hashed, "roles": ["viewer", "admin"]},
                        "ghost": {"name": "G", "password": hashed, "roles": ["superuser"]},
                        "ann": {"name": "Ann", "password": hashed, "roles": ["analyst"]},
                    }
                },
                "cookie": {"name": "nano_export_auth", "expiry_days": 30},
            }
        )
    )
    return path


def test_init_imports_an_older_users_file_once(settings: Settings) -> None:
    engine = get_engine(settings.db_url)
    _yaml_file(settings.auth_file)
    report = initialize(settings)
    assert sorted(report.imported_users) == ["ann", "eve"]
    assert auth.role_of(engine, "eve") == "admin"  # the highest role wins
    assert auth.role_of(engine, "ghost") is None  # no known role: left out
    assert auth.verify_password(engine, "ann", "old-password", rounds=4) is not None

    auth.remove_user(engine, username="ann", actor="test")
    assert initialize(settings).imported_users == ()  # a second init brings nobody back
    assert auth.role_of(engine, "ann") is None
    with engine.connect() as conn:
        imported = list_events(conn, event="user.imported")
    assert sorted(e.actor for e in imported) == ["ann", "eve"]


# --- the signing secret --------------------------------------------------------------------------


def test_init_generates_the_secret_into_the_database_once(db_url: str, tmp_path: Path) -> None:
    keystore.forget()
    a = get_settings(database_url=db_url, data_dir=tmp_path / "a")
    initialize(a)
    secret = a.resolved_secret()
    assert len(secret) == 64
    assert not a.secret_file.exists()
    keystore.forget()
    # Another machine (another data folder) on the same database signs the same way.
    b = get_settings(database_url=db_url, data_dir=tmp_path / "b")
    assert b.resolved_secret() == secret


def test_init_moves_an_existing_secret_key_file_into_the_database(
    db_url: str, tmp_path: Path
) -> None:
    keystore.forget()
    s = get_settings(database_url=db_url, data_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    s.secret_file.write_text("f" * 64 + "\n")
    initialize(s)
    keystore.forget()
    assert get_settings(database_url=db_url, data_dir=tmp_path / "x").resolved_secret() == "f" * 64


def test_the_secret_key_setting_wins_and_must_have_32_bytes(db_url: str, tmp_path: Path) -> None:
    from nano_export.errors import InvalidSetting

    assert get_settings(database_url=db_url, secret_key="s" * 32).resolved_secret() == "s" * 32
    with pytest.raises(InvalidSetting, match=r"NANO_EXPORT_SECRET_KEY: .*at least 32 bytes"):
        get_settings(secret_key="a")


# --- the command line ----------------------------------------------------------------------------


def _env(settings: Settings) -> dict[str, str]:
    return {
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_DATABASE_URL": settings.db_url,
        "NANO_EXPORT_SECRET_KEY": "k" * 40,
        "NANO_EXPORT_BCRYPT_ROUNDS": "4",
    }


def test_users_add_cli_reads_stdin_lowercases_and_audits(settings: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["users", "add", "Frank", "--role", "analyst", "--email", "f@x.org", "--password-stdin"],
        input="hunter2-hunter2\n",
        env=_env(settings),
    )
    assert result.exit_code == 0, result.output
    engine = get_engine(settings.db_url)
    assert auth.verify_password(engine, "frank", "hunter2-hunter2", rounds=4) is not None
    with engine.connect() as conn:
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
        main,
        ["users", "add", "gina", "--role", "viewer"],
        input="gina-password-1\ngina-password-1\n",
        env=_env(settings),
    )
    assert ok.exit_code == 0, ok.output
    dup = runner.invoke(
        main,
        ["users", "add", "GINA", "--role", "admin", "--password-stdin"],
        input="another-password\n",
        env=_env(settings),
    )
    assert dup.exit_code == 2
    assert "already exists" in dup.output
    assert auth.role_of(get_engine(settings.db_url), "gina") == "viewer"


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("hank", "", "must not be empty"),
        ("hank", "short", "at least 12 characters"),
        ("h\u200bank", "long-enough-password", "invisible"),
        ("h\u0430nk", "long-enough-password", "mixes scripts"),
    ],
)
def test_users_add_cli_refuses_weak_input_with_exit_code_2(
    settings: Settings, name: str, password: str, message: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["users", "add", name, "--role", "viewer", "--password-stdin"],
        input=password + "\n",
        env=_env(settings),
    )
    assert result.exit_code == 2
    assert message in result.output
    assert auth.load_users(get_engine(settings.db_url)) == {}


def test_users_remove_set_role_passwd_and_sessions_revoke(settings: Settings) -> None:
    engine = get_engine(settings.db_url)
    user = _add(engine, "ivy")
    sid = sessions.start_session(engine, user_id=user.id, max_age_h=1)
    token = tokens.create_token(engine, name="ivy")
    runner = CliRunner()

    r = runner.invoke(main, ["users", "set-role", "ivy", "admin"], env=_env(settings))
    assert r.exit_code == 0, r.output
    assert auth.role_of(engine, "ivy") == "admin"

    r = runner.invoke(main, ["users", "sessions", "revoke", "ivy"], env=_env(settings))
    assert r.exit_code == 0, r.output
    assert "Ended 1 login" in r.output
    assert sessions.check_session(engine, sid, idle_timeout_min=60) is None

    sid = sessions.start_session(engine, user_id=user.id, max_age_h=1)
    r = runner.invoke(
        main, ["users", "passwd", "ivy"], input="brand-new-password\n", env=_env(settings)
    )
    assert r.exit_code == 0, r.output
    assert auth.verify_password(engine, "ivy", "brand-new-password", rounds=4) is not None
    assert sessions.check_session(engine, sid, idle_timeout_min=60) is None

    r = runner.invoke(main, ["users", "remove", "ivy"], env=_env(settings))
    assert r.exit_code == 0, r.output
    assert auth.load_users(engine) == {}
    assert tokens.user_for_token(engine, token) is None

    r = runner.invoke(main, ["users", "remove", "ivy"], env=_env(settings))
    assert r.exit_code == 2 and "no user 'ivy'" in r.output
    with engine.connect() as conn:
        names = [e.event for e in list_events(conn) if e.event.startswith(("user.", "session."))]
    assert {"user.role_changed", "session.revoked", "user.password_changed", "user.removed"} <= set(
        names
    )


def test_secret_files_are_private_from_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nano_export import demo

    modes: list[int] = []
    real_fdopen = demo.os.fdopen

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))  # before a byte is written
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(demo.os, "fdopen", fdopen)
    old_umask = os.umask(0)  # whatever the umask, the mode is the owner's only
    try:
        path = tmp_path / "demo-login.txt"
        demo.write_private(path, "admin\npw\n")
    finally:
        os.umask(old_umask)
    assert modes == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "admin\npw\n"


def test_the_demo_login_is_created_in_the_database_and_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("NANO_EXPORT_DATA_DIR", str(data))
    monkeypatch.setenv("NANO_EXPORT_BCRYPT_ROUNDS", "4")
    for name in ("DATABASE_URL", "SECRET_KEY", "AUTH_FILE"):
        monkeypatch.delenv(f"NANO_EXPORT_{name}", raising=False)
    result = CliRunner().invoke(main, ["demo", "--rows", "20"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Demo login"))
    password = line.split("password ")[1].strip("'")
    settings = get_settings()
    engine = get_engine(settings.db_url)
    assert auth.verify_password(engine, "admin", password, rounds=4) is not None
    assert stat.S_IMODE((data / "demo-login.txt").stat().st_mode) == 0o600
    assert not (data / "secret.key").exists()
    again = CliRunner().invoke(main, ["demo", "--rows", "20"])
    assert f"password {password!r}" in again.output  # shown again, not a new one
