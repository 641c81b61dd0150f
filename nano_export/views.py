"""Saved views: a named dataset, filter spec and columns, kept in the shared database.

A view belongs to its owner and is private unless shared; teammates see shared views and open
them by ``OWNER/NAME`` (a plain ``NAME`` is the caller's own view first, then the only shared
view of that name). Only the owner (or an admin) changes or deletes a view. The dashboard, the
CLI (``nano-export views``) and the API (``/api/views``) call these functions.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, RowMapping, delete, insert, or_, select, update

from nano_export import filters
from nano_export.datasets import get_dataset
from nano_export.db import utcnow
from nano_export.errors import BadInput, NotFound, PermissionDenied
from nano_export.models import FilterSpec, Role
from nano_export.schema import saved_views as table

NAME_RE = re.compile(r"^[\w][\w .:-]{0,127}$")


class SavedView(BaseModel):
    """One saved view as the CLI's JSON, the API and the dashboard show it."""

    name: str
    owner: str
    dataset: str
    filters: FilterSpec = Field(default_factory=FilterSpec)
    columns: list[str] | None = None
    shared: bool = False
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        """The name a teammate opens it by: ``OWNER/NAME``."""
        return f"{self.owner}/{self.name}"

    def public(self) -> dict[str, Any]:
        """The JSON object of the API and ``views list --json``."""
        return self.model_dump(mode="json")


class ViewRequest(BaseModel):
    """The JSON body of ``POST /api/views``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dataset: str = "evaluation-results"
    filters: FilterSpec = Field(default_factory=FilterSpec)
    columns: list[str] | None = None
    shared: bool = False


def _view(row: RowMapping) -> SavedView:
    spec = json.loads(row["spec"])
    return SavedView(
        name=row["name"],
        owner=row["owner"],
        dataset=row["dataset"],
        filters=FilterSpec.model_validate(spec.get("filters") or {}),
        columns=spec.get("columns"),
        shared=bool(row["shared"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def check_name(name: str) -> str:
    """The view name, stripped; BadInput unless it is 1–128 letters, digits, ``_ . : -`` or
    spaces (no ``/``: that separates owner and name)."""
    clean = name.strip()
    if not NAME_RE.match(clean):
        raise BadInput(
            f"bad view name {name!r}: use 1 to 128 letters, digits, spaces or _ . : - "
            "(no slash), starting with a letter or digit"
        )
    return clean


def save_view(
    engine: Engine,
    *,
    name: str,
    owner: str,
    dataset: str,
    spec: FilterSpec,
    columns: list[str] | None = None,
    shared: bool = False,
) -> SavedView:
    """Create or replace the owner's view called ``name``; the spec is checked first."""
    clean = check_name(name)
    ds = get_dataset(dataset)
    filters.validate(spec, ds)
    if columns is not None:
        unknown = [c for c in columns if c not in ds.column_names]
        if unknown or not columns:
            raise BadInput(
                f"unknown column(s) {', '.join(unknown) or '(none given)'} for {ds.name}; "
                f"choose from: {', '.join(ds.column_names)}"
            )
    body = json.dumps({"filters": json.loads(spec.to_json()), "columns": columns})
    now = utcnow()
    with engine.begin() as conn:
        found = conn.execute(
            select(table.c.id).where(table.c.owner == owner, table.c.name == clean)
        ).first()
        values = {"dataset": ds.name, "spec": body, "shared": shared, "updated_at": now}
        if found is None:
            conn.execute(insert(table).values(name=clean, owner=owner, created_at=now, **values))
        else:
            conn.execute(update(table).where(table.c.id == found.id).values(**values))
    return get_view(engine, name=f"{owner}/{clean}", user=owner)


def list_views(engine: Engine, *, user: str) -> list[SavedView]:
    """The user's own views and every view shared by others, by owner then name."""
    stmt = (
        select(table)
        .where(or_(table.c.owner == user, table.c.shared.is_(True)))
        .order_by(table.c.owner != user, table.c.owner, table.c.name)
    )
    with engine.connect() as conn:
        return [_view(row) for row in conn.execute(stmt).mappings()]


def get_view(engine: Engine, *, name: str, user: str, role: Role | None = None) -> SavedView:
    """The view ``name`` (or ``OWNER/NAME``) that ``user`` may open; NotFound otherwise."""
    owner, sep, plain = name.partition("/")
    with engine.connect() as conn:
        if sep:
            row = conn.execute(
                select(table).where(table.c.owner == owner, table.c.name == plain)
            ).first()
            if row is not None and (row.owner == user or bool(row.shared) or role == "admin"):
                return _view(row._mapping)
            raise NotFound(f"no view {name!r} that you may open")
        own = conn.execute(select(table).where(table.c.owner == user, table.c.name == name)).first()
        if own is not None:
            return _view(own._mapping)
        shared = conn.execute(
            select(table).where(table.c.name == name, table.c.shared.is_(True))
        ).all()
    if len(shared) == 1:
        return _view(shared[0]._mapping)
    if shared:
        owners = ", ".join(f"{r.owner}/{name}" for r in shared)
        raise BadInput(f"several teammates share a view called {name!r}: open one of {owners}")
    raise NotFound(f"no view {name!r} that you may open")


def delete_view(engine: Engine, *, name: str, user: str, role: Role | None = None) -> SavedView:
    """Delete a view; only its owner (or an admin) may."""
    view = get_view(engine, name=name, user=user, role=role)
    if view.owner != user and role != "admin":
        raise PermissionDenied(f"the view {view.ref!r} is {view.owner}'s: only they may delete it")
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.owner == view.owner, table.c.name == view.name))
    return view
