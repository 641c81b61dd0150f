"""Storing and changing schedules on both databases: validation, ownership, audit, claiming."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from factories import write_users
from sqlalchemy import Engine

from nano_export import audit
from nano_export.cadence import make_timing
from nano_export.db import utcnow
from nano_export.errors import BadInput, InvalidFilter, NotFound, PermissionDenied
from nano_export.models import AuditEvent, ExportRequest, FilterSpec
from nano_export.scheduler import claim
from nano_export.schedules import (
    create_schedule,
    due_schedules,
    get_schedule,
    list_schedules,
    remove_schedule,
    set_paused,
)
from nano_export.settings import Settings

NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # a Friday, two days before Berlin's DST change
DAILY_9_BERLIN = make_timing("daily", at="09:00", tz="Europe/Berlin")


@pytest.fixture
def users(settings: Settings) -> Settings:
    write_users(settings, {"ann": "analyst", "vic": "viewer", "ada": "admin"})
    return settings


def add(
    engine: Engine, settings: Settings, name: str = "daily-openai", owner: str = "ann", **kw: object
) -> object:
    params: dict[str, object] = {
        "name": name,
        "owner": owner,
        "request": ExportRequest(
            dataset="evaluation-results", filters=FilterSpec(provider=("openai",))
        ),
        "timing": DAILY_9_BERLIN,
        "recipients": ["team@example.org"],
        "interface": "cli",
        "now": NOW,
    }
    params.update(kw)
    return create_schedule(engine, settings, **params)  # type: ignore[arg-type]


def events(engine: Engine, event: str) -> list[AuditEvent]:
    with engine.connect() as conn:
        return audit.list_events(conn, event=event)


def test_created_schedule_is_stored_with_next_run_in_its_zone_and_audited(
    engine: Engine, users: Settings
) -> None:
    add(engine, users, recipients=["team@example.org", " team@example.org", "b@example.org"])
    sched = get_schedule(engine, name="daily-openai")
    assert sched.owner == "ann"
    assert sched.request.filters.provider == ("openai",)
    assert sched.next_run_at == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert sched.recipients == ["team@example.org", "b@example.org"]
    assert not sched.paused and sched.last_run_at is None
    (event,) = events(engine, "schedule.created")
    assert event.actor == "ann" and event.details["schedule"] == "daily-openai"
    assert event.details["cadence"] == "daily at 09:00 Europe/Berlin"


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"owner": "nobody"}, BadInput, "unknown user 'nobody'"),
        ({"recipients": ["not-an-address"]}, BadInput, "bad email address"),
        ({"recipients": []}, BadInput, "at least one email recipient"),
        ({"name": "  "}, BadInput, "bad schedule name"),
        (
            {"request": ExportRequest(dataset="evaluation-results", filters={"where": "cost >"})},
            InvalidFilter,
            "position",
        ),
        ({"request": ExportRequest(dataset="no-such-data")}, BadInput, "unknown dataset"),
        (
            {"request": ExportRequest(dataset="evaluation-results", columns=["nope"])},
            BadInput,
            "unknown column",
        ),
    ],
)
def test_invalid_schedule_is_refused_before_anything_is_stored(
    engine: Engine, users: Settings, kw: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        add(engine, users, **kw)
    assert list_schedules(engine) == []
    assert events(engine, "schedule.created") == []


def test_privacy_above_the_owners_role_is_refused_and_audited(
    engine: Engine, users: Settings
) -> None:
    request = ExportRequest(dataset="evaluation-results", privacy="full")
    with pytest.raises(PermissionDenied, match="'full' was requested"):
        add(engine, users, request=request)
    assert list_schedules(engine) == []
    (denied,) = events(engine, "export.denied")
    assert denied.actor == "ann" and denied.details["schedule"] == "daily-openai"


def test_duplicate_name_is_refused(engine: Engine, users: Settings) -> None:
    add(engine, users)
    with pytest.raises(BadInput, match="already exists"):
        add(engine, users, owner="ada")


def test_list_filters_by_owner(engine: Engine, users: Settings) -> None:
    add(engine, users, name="b-ann")
    add(engine, users, name="a-ada", owner="ada")
    assert [s.name for s in list_schedules(engine)] == ["a-ada", "b-ann"]
    assert [s.name for s in list_schedules(engine, user="ann")] == ["b-ann"]


def test_pause_and_resume_are_audited_and_resume_plans_from_now(
    engine: Engine, users: Settings
) -> None:
    add(engine, users)
    assert set_paused(engine, name="daily-openai", paused=True, interface="cli", now=NOW).paused
    later = NOW + timedelta(days=10)
    resumed = set_paused(engine, name="daily-openai", paused=False, interface="cli", now=later)
    assert not resumed.paused
    assert resumed.next_run_at == datetime(2026, 4, 7, 7, 0, tzinfo=UTC)  # 09:00 CEST
    changes = [e.details["change"] for e in events(engine, "schedule.changed")]
    assert changes == ["paused", "resumed"]


def test_users_change_only_their_own_schedules_and_admins_all(
    engine: Engine, users: Settings
) -> None:
    add(engine, users)
    with pytest.raises(NotFound):
        set_paused(engine, name="daily-openai", paused=True, interface="dashboard",
                   actor="vic", role="viewer")  # fmt: skip
    with pytest.raises(NotFound):
        remove_schedule(engine, name="daily-openai", interface="dashboard", actor="vic",
                        role="viewer")  # fmt: skip
    set_paused(engine, name="daily-openai", paused=True, interface="dashboard",
               actor="ada", role="admin")  # fmt: skip
    remove_schedule(engine, name="daily-openai", interface="dashboard", actor="ann",
                    role="analyst")  # fmt: skip
    assert list_schedules(engine) == []
    removed = events(engine, "schedule.changed")[-1]
    assert removed.actor == "ann" and removed.details["change"] == "removed"


def test_unknown_schedule_is_not_found(engine: Engine, users: Settings) -> None:
    with pytest.raises(NotFound, match="no schedule named 'ghost'"):
        set_paused(engine, name="ghost", paused=True, interface="cli")


def test_only_one_of_many_concurrent_claims_wins(engine: Engine, users: Settings) -> None:
    add(engine, users, now=utcnow() - timedelta(days=2))
    now = utcnow()
    (due,) = due_schedules(engine, now=now)
    barrier = threading.Barrier(4)
    wins: list[bool] = []

    def race() -> None:
        barrier.wait()
        wins.append(claim(engine, due, now=now))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]
    after = get_schedule(engine, name="daily-openai")
    assert after.next_run_at > now  # one run for all missed slots: planned from now
    assert after.next_run_at - now <= timedelta(days=1)
    assert after.last_run_at == now
    assert due_schedules(engine, now=now) == []


def test_paused_schedule_is_neither_due_nor_claimable(engine: Engine, users: Settings) -> None:
    add(engine, users, now=utcnow() - timedelta(days=2))
    now = utcnow()
    (due,) = due_schedules(engine, now=now)
    set_paused(engine, name="daily-openai", paused=True, interface="cli")
    assert due_schedules(engine, now=now) == []
    assert claim(engine, due, now=now) is False


def test_migration_0002_downgrades_and_upgrades_again(sqlite_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from nano_export.db import alembic_config, get_engine, upgrade

    engine = get_engine(sqlite_url)
    assert inspect(engine).has_table("schedules")
    command.downgrade(alembic_config(engine), "0001")
    assert not inspect(engine).has_table("schedules")
    assert inspect(engine).has_table("exports")
    upgrade(engine)
    assert inspect(engine).has_table("schedules")
