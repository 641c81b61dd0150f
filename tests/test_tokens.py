"""API tokens: hashed storage, lookup, revocation, audit, and the ``tokens`` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from api_server import USERS, write_auth_file
from click.testing import CliRunner
from factories import write_users
from sqlalchemy import Engine, select, update

from nano_export import auth, tokens
from nano_export.audit import list_events
from nano_export.cli import main
from nano_export.db import get_engine
from nano_export.schema import api_tokens
from nano_export.settings import Settings


@pytest.fixture
def engine(settings: Settings) -> Engine:
    """The test database with the users the token tests act for."""
    extra = {n: "analyst" for n in ("alice", "a", "b", "bob", "carol")}
    write_users(settings, {**USERS, **extra}, password="pw")
    return get_engine(settings.db_url)


def _user(engine: Engine, token: str) -> str | None:
    found = tokens.user_for_token(engine, token)
    return found.username if found else None


def test_create_token_stores_only_its_sha256_hash_and_a_short_prefix(engine: Engine) -> None:
    token = tokens.create_token(engine, name="Alice")

    assert token.startswith("nxt_") and len(token) > 40
    with engine.connect() as conn:
        row = conn.execute(select(api_tokens)).mappings().one()
    assert row["name"] == "alice"
    assert row["token_hash"] == tokens.hash_token(token)
    assert token not in row.values()
    assert row["prefix"] == token[:12] and len(row["prefix"]) < len(token)


def test_two_tokens_for_one_user_are_different(engine: Engine) -> None:
    assert tokens.create_token(engine, name="a") != tokens.create_token(engine, name="a")


def test_user_for_token_finds_the_user_and_records_last_use(engine: Engine) -> None:
    token = tokens.create_token(engine, name="bob")

    assert _user(engine, token) == "bob"
    [info] = tokens.list_tokens(engine)
    assert info.last_used_at is not None
    assert info.last_used_at.tzinfo is not None


def test_user_for_token_refuses_unknown_malformed_and_revoked_tokens(engine: Engine) -> None:
    token = tokens.create_token(engine, name="bob")

    assert tokens.user_for_token(engine, token + "x") is None
    assert tokens.user_for_token(engine, "not-a-token") is None
    assert tokens.user_for_token(engine, "") is None
    assert tokens.revoke_tokens(engine, name="BOB") == 1
    assert tokens.user_for_token(engine, token) is None


def test_last_used_is_written_at_most_once_a_minute(engine: Engine) -> None:
    token = tokens.create_token(engine, name="bob")
    tokens.user_for_token(engine, token)
    [first] = tokens.list_tokens(engine)
    tokens.user_for_token(engine, token)
    [second] = tokens.list_tokens(engine)
    assert second.last_used_at == first.last_used_at

    assert first.last_used_at is not None
    with engine.begin() as conn:
        conn.execute(
            update(api_tokens).values(last_used_at=first.last_used_at - timedelta(hours=1))
        )
    tokens.user_for_token(engine, token)
    [third] = tokens.list_tokens(engine)
    assert third.last_used_at is not None and third.last_used_at > first.last_used_at


def test_revoke_tokens_revokes_only_that_users_active_tokens(engine: Engine) -> None:
    a1 = tokens.create_token(engine, name="a")
    a2 = tokens.create_token(engine, name="a")
    b = tokens.create_token(engine, name="b")

    assert tokens.revoke_tokens(engine, name="a") == 2
    assert tokens.revoke_tokens(engine, name="a") == 0
    assert tokens.user_for_token(engine, a1) is None
    assert tokens.user_for_token(engine, a2) is None
    assert _user(engine, b) == "b"
    listed = {(t.name, t.active) for t in tokens.list_tokens(engine)}
    assert listed == {("a", False), ("b", True)}


def test_create_and_revoke_are_audited_without_the_token(engine: Engine) -> None:
    token = tokens.create_token(engine, name="carol", actor="ops")
    tokens.revoke_tokens(engine, name="carol", actor="ops")

    with engine.connect() as conn:
        events = list_events(conn)
    assert [e.event for e in events] == ["token.created", "token.revoked"]
    assert all(e.actor == "ops" for e in events)
    assert events[0].details["token_user"] == "carol"
    assert events[1].rows == 1
    assert all(token not in json.dumps(e.public()) for e in events)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment pointing the CLI at the test database, with users ann (analyst) and vic."""
    write_auth_file(settings)
    return {
        "NANO_EXPORT_DATABASE_URL": settings.db_url,
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_SECRET_KEY": settings.resolved_secret(),
    }


def test_cli_tokens_create_prints_the_token_alone_on_stdout(
    cli_env: dict[str, str], engine: Engine
) -> None:
    result = CliRunner().invoke(main, ["tokens", "create", "Ann"], env=cli_env)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert _user(engine, lines[0]) == "ann"
    assert "shown only this once" in result.stderr


def test_cli_tokens_create_refuses_a_name_that_is_not_a_user(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["tokens", "create", "mallory"], env=cli_env)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no user 'mallory'" in result.stderr


def test_cli_tokens_list_shows_prefixes_never_tokens(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    token = runner.invoke(main, ["tokens", "create", "vic"], env=cli_env).stdout.strip()

    table = runner.invoke(main, ["tokens", "list"], env=cli_env)
    as_json = runner.invoke(main, ["tokens", "list", "--json"], env=cli_env)

    assert table.exit_code == 0 and as_json.exit_code == 0
    assert token not in table.output and token not in as_json.output
    assert "vic" in table.stdout and token[:12] in table.stdout and "active" in table.stdout
    [entry] = json.loads(as_json.stdout)
    assert entry["name"] == "vic" and entry["prefix"] == token[:12] and entry["active"] is True


def test_cli_tokens_revoke_disables_the_token_and_reports_nothing_to_revoke(
    cli_env: dict[str, str], engine: Engine
) -> None:
    runner = CliRunner()
    token = runner.invoke(main, ["tokens", "create", "ann"], env=cli_env).stdout.strip()

    first = runner.invoke(main, ["tokens", "revoke", "ann"], env=cli_env)
    again = runner.invoke(main, ["tokens", "revoke", "ann"], env=cli_env)

    assert first.exit_code == 0 and "Revoked 1 token(s)" in first.stdout
    assert tokens.user_for_token(engine, token) is None
    assert again.exit_code == 2 and "no active API token" in again.stderr


# --- one token at a time, expiry, names, and the user record ------------------------------------


def test_one_token_revoked_by_id_while_the_users_other_token_keeps_working(
    engine: Engine, cli_env: dict[str, str]
) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["tokens", "create", "ann", "--name", "laptop"], env=cli_env)
    second = runner.invoke(main, ["tokens", "create", "ann", "--name", "ci"], env=cli_env)
    listed = json.loads(runner.invoke(main, ["tokens", "list", "--json"], env=cli_env).stdout)
    laptop = next(t for t in listed if t["label"] == "laptop")

    r = runner.invoke(main, ["tokens", "revoke", "--id", str(laptop["id"])], env=cli_env)

    assert r.exit_code == 0, r.output
    assert tokens.user_for_token(engine, first.stdout.strip()) is None
    assert _user(engine, second.stdout.strip()) == "ann"
    r = runner.invoke(main, ["tokens", "revoke"], env=cli_env)
    assert r.exit_code == 2 and "--id ID" in r.output


def test_a_token_with_an_expiry_stops_working_after_it(engine: Engine) -> None:
    token = tokens.create_token(engine, name="bob", expires_days=1, label="short")
    assert _user(engine, token) == "bob"
    with engine.begin() as conn:
        conn.execute(update(api_tokens).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert tokens.user_for_token(engine, token) is None
    [info] = tokens.list_tokens(engine)
    assert (info.status, info.label) == ("expired", "short")


def test_cli_tokens_create_refuses_a_bad_expiry(cli_env: dict[str, str]) -> None:
    r = CliRunner().invoke(main, ["tokens", "create", "ann", "--expires", "0"], env=cli_env)
    assert r.exit_code == 2


def test_a_re_added_user_name_does_not_revive_old_tokens(
    engine: Engine, settings: Settings
) -> None:
    old = tokens.create_token(engine, name="carol")
    auth.remove_user(engine, username="carol", actor="test")
    auth.add_user(engine, username="carol", role="admin", password="carol-password-2", rounds=4)
    assert tokens.user_for_token(engine, old) is None
    new = tokens.create_token(engine, name="carol")
    found = tokens.user_for_token(engine, new)
    assert found is not None and found.role == "admin"
