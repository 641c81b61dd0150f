"""Saved views on both databases: the store, the CLI and the checks on names, specs and owners."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from factories import write_users
from sqlalchemy import Engine

from nano_export import views
from nano_export.cli import main
from nano_export.errors import BadInput, InvalidFilter, NotFound, PermissionDenied
from nano_export.models import FilterSpec
from nano_export.settings import Settings


def test_private_views_stay_private_and_shared_ones_open_by_owner_slash_name(
    engine: Engine,
) -> None:
    spec = FilterSpec(provider=("openai",), where="cost_usd > 0.01")
    views.save_view(engine, name="costly", owner="ann", dataset="evaluation-results", spec=spec)
    views.save_view(
        engine,
        name="fails",
        owner="ann",
        dataset="performance-metrics",
        spec=FilterSpec(success=False),
        columns=["execution_id", "model"],
        shared=True,
    )
    assert [v.name for v in views.list_views(engine, user="ann")] == ["costly", "fails"]
    assert [v.ref for v in views.list_views(engine, user="bob")] == ["ann/fails"]
    opened = views.get_view(engine, name="ann/fails", user="bob")
    assert opened.filters.success is False and opened.columns == ["execution_id", "model"]
    assert views.get_view(engine, name="fails", user="bob").ref == "ann/fails"
    assert views.get_view(engine, name="costly", user="ann").filters == spec
    with pytest.raises(NotFound, match="no view 'ann/costly'"):
        views.get_view(engine, name="ann/costly", user="bob")
    assert views.get_view(engine, name="ann/costly", user="root", role="admin").name == "costly"


def test_saving_again_replaces_and_only_the_owner_deletes(engine: Engine) -> None:
    for shared in (False, True):
        views.save_view(
            engine,
            name="mine",
            owner="ann",
            dataset="evaluation-results",
            spec=FilterSpec(),
            shared=shared,
        )
    assert [v.shared for v in views.list_views(engine, user="ann")] == [True]
    with pytest.raises(PermissionDenied, match="only they may delete it"):
        views.delete_view(engine, name="ann/mine", user="bob", role="analyst")
    assert views.delete_view(engine, name="mine", user="ann").ref == "ann/mine"
    assert views.list_views(engine, user="ann") == []


def test_bad_views_are_refused_before_anything_is_stored(engine: Engine) -> None:
    def save(**kw: object) -> None:
        args: dict[str, object] = {
            "name": "v",
            "owner": "ann",
            "dataset": "evaluation-results",
            "spec": FilterSpec(),
        }
        views.save_view(engine, **(args | kw))  # type: ignore[arg-type]

    with pytest.raises(BadInput, match="bad view name"):
        save(name="a/b")
    with pytest.raises(BadInput, match="bad view name"):
        save(name=" ")
    with pytest.raises(InvalidFilter):
        save(spec=FilterSpec(where="nope > 1"))
    with pytest.raises(BadInput, match="unknown column"):
        save(columns=["execution_id", "nope"])
    with pytest.raises(BadInput, match="unknown dataset"):
        save(dataset="bogus")
    assert views.list_views(engine, user="ann") == []


def test_two_teammates_sharing_one_name_must_be_told_apart(engine: Engine) -> None:
    for owner in ("ann", "cy"):
        views.save_view(
            engine,
            name="daily",
            owner=owner,
            dataset="evaluation-results",
            spec=FilterSpec(),
            shared=True,
        )
    with pytest.raises(BadInput, match="open one of ann/daily, cy/daily"):
        views.get_view(engine, name="daily", user="bob")


def cli(settings: Settings, *args: str) -> Result:
    env = {
        "NANO_EXPORT_DATA_DIR": str(settings.data_dir),
        "NANO_EXPORT_SECRET_KEY": settings.resolved_secret(),
    }
    return CliRunner().invoke(main, ["--db", settings.db_url, *args], env=env)


def test_cli_save_list_show_delete(settings: Settings) -> None:
    write_users(settings, {"ann": "analyst", "bob": "viewer"})
    saved = cli(
        settings,
        *("views", "save", "openai fails", "--user", "ann", "--provider", "openai"),
        *("--failed", "--since", "2025-08-01", "--columns", "execution_id,model", "--shared"),
    )
    assert saved.exit_code == 0, saved.output
    assert "saved view ann/openai fails (shared)" in saved.output
    listed = cli(settings, "views", "list", "--user", "bob", "--json")
    assert listed.exit_code == 0, listed.output
    [view] = json.loads(listed.output)
    assert view["filters"]["provider"] == ["openai"] and view["filters"]["success"] is False
    assert view["columns"] == ["execution_id", "model"] and view["owner"] == "ann"
    table = cli(settings, "views", "list", "--user", "bob")
    assert "ann/openai fails" in table.output and "yes" in table.output
    shown = cli(settings, "views", "show", "ann/openai fails", "--user", "bob")
    assert json.loads(shown.output)["name"] == "openai fails"
    refused = cli(settings, "views", "delete", "ann/openai fails", "--user", "bob")
    assert refused.exit_code == 3 and "only they may delete it" in refused.output
    deleted = cli(settings, "views", "delete", "openai fails", "--user", "ann")
    assert deleted.exit_code == 0 and "deleted view ann/openai fails" in deleted.output
    missing = cli(settings, "views", "show", "openai fails", "--user", "ann")
    assert missing.exit_code == 2 and "no view 'openai fails'" in missing.output


def test_cli_bad_input_exits_2_and_stores_nothing(settings: Settings) -> None:
    write_users(settings, {"ann": "analyst"})
    bad = cli(settings, "views", "save", "x", "--user", "ann", "--where", "cost_usd >> 1")
    assert bad.exit_code == 2 and "Error:" in bad.output
    both = cli(settings, "views", "save", "x", "--user", "ann", "--success", "--failed")
    assert both.exit_code == 2
    stranger = cli(settings, "views", "list", "--user", "nobody")
    assert stranger.exit_code == 3
    assert json.loads(cli(settings, "views", "list", "--user", "ann", "--json").output) == []
