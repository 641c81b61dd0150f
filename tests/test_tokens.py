"""API tokens: hashed storage, lookup, revocation, audit, and the ``tokens`` command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from api_server import write_auth_file
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from nano_export import tokens
from nano_export.audit import list_events
from nano_export.cli import main
from nano_export.schema import api_tokens
from nano_export.settings import Settings


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

    assert tokens.user_for_token(engine, token) == "bob"
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
    assert tokens.user_for_token(engine, b) == "b"
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
    assert tokens.user_for_token(engine, lines[0]) == "ann"
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

    assert first.exit_code == 0 and "Revoked 1 token(s) of ann" in first.stdout
    assert tokens.user_for_token(engine, token) is None
    assert again.exit_code == 2 and "no active API token" in again.stderr
