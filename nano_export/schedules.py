"""Scheduled exports: saved export specs, owned by a user, run on a cadence and mailed.

This module stores and changes schedules (create, list, pause, resume, remove); running them —
claiming a due run, exporting, emailing — is ``nano_export.scheduler``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.engine import RowMapping

from nano_export import audit, auth, jobs
from nano_export.cadence import WEEKDAYS, Cadence, Timing, make_timing, next_run
from nano_export.db import as_utc, utcnow
from nano_export.errors import BadInput, NotFound
from nano_export.exporter import plan_export
from nano_export.models import ExportRequest, Interface, Role
from nano_export.schema import schedules as table
from nano_export.settings import Settings

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s,;<>\"']+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


class Schedule(BaseModel):
    """One saved schedule as every interface sees it."""

    id: int
    name: str
    owner: str
    request: ExportRequest
    cadence: Cadence
    weekday: int | None
    at: str
    timezone: str
    recipients: list[str]
    paused: bool
    created_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime
    last_export_id: str | None

    @property
    def timing(self) -> Timing:
        """The cadence as a Timing."""
        day = None if self.weekday is None else WEEKDAYS[self.weekday]
        return make_timing(self.cadence, at=self.at, tz=self.timezone, weekday=day)

    def public(self) -> dict[str, Any]:
        """The JSON form of ``schedules list --json``."""
        return {
            "name": self.name,
            "owner": self.owner,
            "dataset": self.request.dataset,
            "filters": self.request.filters.model_dump(mode="json", exclude_defaults=True),
            "columns": self.request.columns,
            "rename": self.request.rename,
            "privacy": self.request.privacy,
            "format": self.request.format,
            "every": self.cadence,
            "weekday": None if self.weekday is None else WEEKDAYS[self.weekday],
            "at": self.at,
            "tz": self.timezone,
            "email": self.recipients,
            "paused": self.paused,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "next_run_at": self.next_run_at.isoformat(),
            "last_export_id": self.last_export_id,
        }


def _schedule(row: RowMapping) -> Schedule:
    return Schedule(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        request=ExportRequest.model_validate_json(row["spec"]),
        cadence=row["cadence"],
        weekday=row["weekday"],
        at=row["at_time"],
        timezone=row["timezone"],
        recipients=json.loads(row["recipients"]),
        paused=bool(row["paused"]),
        created_at=as_utc(row["created_at"]),
        last_run_at=as_utc(row["last_run_at"]),
        next_run_at=as_utc(row["next_run_at"]),
        last_export_id=row["last_export_id"],
    )


def check_recipients(addresses: Sequence[str]) -> list[str]:
    """Trimmed, de-duplicated addresses; BadInput for none or a malformed one."""
    out: list[str] = []
    for raw in addresses:
        address = raw.strip()
        if not _EMAIL.match(address):
            raise BadInput(f"bad email address {raw!r}: expected name@domain")
        if address not in out:
            out.append(address)
    if not out:
        raise BadInput("a schedule needs at least one email recipient")
    return out


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128 or any(not c.isprintable() for c in name):
        raise BadInput(f"bad schedule name {name!r}: use 1 to 128 printable characters")
    return name


def create_schedule(
    engine: Engine,
    settings: Settings,
    *,
    name: str,
    owner: str,
    request: ExportRequest,
    timing: Timing,
    recipients: Sequence[str],
    interface: Interface,
    actor: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Validate and store a schedule for ``owner``; audited ``schedule.created``.

    BadInput for a bad name, recipient, unknown user or invalid export spec; PermissionDenied
    (audited ``export.denied``) when the privacy level is above the owner's role.
    """
    name = _check_name(name)
    emails = check_recipients(recipients)
    owner = owner.strip().lower()
    role = auth.role_of(engine, owner)
    if role is None:
        raise BadInput(f"unknown user {owner!r}: add it with `nano-export users add`")
    plan_export(request)  # dataset, columns, renames and filters, before anything is stored
    jobs.check_privacy(
        engine,
        user=actor or owner,
        role=role,
        request=request,
        interface=interface,
        details={"schedule": name},
    )
    now = (now or utcnow()).astimezone(UTC)
    with engine.begin() as conn:
        if conn.execute(select(table.c.id).where(table.c.name == name)).first():
            raise BadInput(f"a schedule named {name!r} already exists")
        conn.execute(
            table.insert().values(
                name=name,
                owner=owner,
                dataset=request.dataset,
                spec=request.model_dump_json(),
                privacy=request.privacy,
                cadence=timing.cadence,
                weekday=timing.weekday,
                at_time=f"{timing.at:%H:%M}",
                timezone=timing.tz.key,
                recipients=json.dumps(emails),
                paused=False,
                created_at=now,
                updated_at=now,
                next_run_at=next_run(timing, after=now),
            )
        )
        audit.record(
            conn,
            event="schedule.created",
            actor=actor or owner,
            interface=interface,
            dataset=request.dataset,
            privacy=request.privacy,
            details={"schedule": name, "owner": owner, "cadence": timing.describe()},
        )
    log.info("schedule created", extra={"schedule": name, "owner": owner})
    return get_schedule(engine, name=name)


def get_schedule(engine: Engine, *, name: str) -> Schedule:
    """The schedule called ``name``; NotFound otherwise."""
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no schedule named {name!r}")
    return _schedule(row)


def list_schedules(engine: Engine, *, user: str | None = None) -> list[Schedule]:
    """Schedules by name: all of them, or those owned by ``user``."""
    stmt = select(table).order_by(table.c.name)
    if user is not None:
        stmt = stmt.where(table.c.owner == user)
    with engine.connect() as conn:
        return [_schedule(row) for row in conn.execute(stmt).mappings()]


def editable_schedule(engine: Engine, name: str, actor: str | None, role: Role | None) -> Schedule:
    """The schedule ``actor`` may change: owners their own, admins all; NotFound otherwise.

    ``actor`` None is the local operator (the command line), who may change any schedule.
    """
    sched = get_schedule(engine, name=name)
    if actor is not None and role != "admin" and sched.owner != actor:
        raise NotFound(f"no schedule named {name!r}")
    return sched


def set_paused(
    engine: Engine,
    *,
    name: str,
    paused: bool,
    interface: Interface,
    actor: str | None = None,
    role: Role | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Pause or resume a schedule; resuming plans the next run from now. Audited."""
    sched = editable_schedule(engine, name, actor, role)
    now = (now or utcnow()).astimezone(UTC)
    values: dict[str, Any] = {"paused": paused, "updated_at": now}
    if not paused:
        values["next_run_at"] = next_run(sched.timing, after=now)
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == sched.id).values(**values))
        _audit_change(conn, sched, "paused" if paused else "resumed", interface, actor)
    return get_schedule(engine, name=name)


def remove_schedule(
    engine: Engine,
    *,
    name: str,
    interface: Interface,
    actor: str | None = None,
    role: Role | None = None,
) -> None:
    """Delete a schedule (its past exports stay). Audited."""
    sched = editable_schedule(engine, name, actor, role)
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.id == sched.id))
        _audit_change(conn, sched, "removed", interface, actor)


def due_schedules(engine: Engine, *, now: datetime) -> list[Schedule]:
    """Unpaused schedules whose next run is at or before ``now``."""
    stmt = (
        select(table)
        .where(table.c.paused.is_(False), table.c.next_run_at <= now)
        .order_by(table.c.next_run_at, table.c.id)
    )
    with engine.connect() as conn:
        return [_schedule(row) for row in conn.execute(stmt).mappings()]


def _audit_change(
    conn: Connection, sched: Schedule, change: str, interface: Interface, actor: str | None
) -> None:
    """A ``schedule.changed`` event, in the acting user's name (the owner's by default)."""
    audit.record(
        conn,
        event="schedule.changed",
        actor=actor or sched.owner,
        interface=interface,
        dataset=sched.request.dataset,
        details={"schedule": sched.name, "change": change},
    )
