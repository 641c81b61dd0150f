"""Bulk test data for export tests, inserted with SQL Core (independent of the demo seeder)."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
from sqlalchemy import Engine, update

from nano_export import auth
from nano_export.db import get_engine
from nano_export.schema import execution_metrics, executions, export_slots, exports, interactions
from nano_export.schema import users as users_table
from nano_export.settings import Settings

START = datetime(2025, 8, 1, tzinfo=UTC)
MODELS = [
    ("openai", "gpt-5-mini"),
    ("anthropic", "claude-opus-4-1-20250805"),
    ("ollama", "gpt-oss:20b"),
]
#: Planted in every 10th prompt: a credential, an email and a home directory.
SECRET = "sk-proj-T3stKeyABCDEFGHIJKLMNOPQRSTUV"
PLANTED = f"use {SECRET} and write to bob@example.com in /home/bob/notes.txt"
#: The fields of an export record in the API and `exports list --json` (SPEC, "HTTP API").
RECORD_FIELDS = {
    "id",
    "dataset",
    "status",
    "rows_done",
    "rows_total",
    "bytes",
    "sha256",
    "error",
    "created_at",
    "finished_at",
}


def insert_executions(engine: Engine, n: int, *, first_id: int = 1) -> None:
    """Insert ``n`` executions with metrics and two interactions each, in batches."""
    batch = 5_000
    for lo in range(first_id, first_id + n, batch):
        hi = min(lo + batch, first_id + n)
        ex, me, it = [], [], []
        for i in range(lo, hi):
            provider, model = MODELS[i % len(MODELS)]
            ok = i % 7 != 0
            started = START + timedelta(minutes=i)
            ex.append(
                {
                    "id": i,
                    "source_key": f"factory:{i}",
                    "test_id": f"test_{i % 4}",
                    "test_name": f"Test {i % 4}",
                    "provider": provider,
                    "model": model,
                    "started_at": started,
                    "success": ok,
                    "error": None if ok else "timeout after 30 s",
                    "execution_time_s": 1.5 + (i % 10),
                    "prompt": PLANTED if i % 10 == 0 else f'=SUM(A{i}) what is {i}, "quoted"?',
                    "response": f"answer {i}\nsecond line, with comma",
                    "user": f"user{i % 3}",
                    "session_id": f"sess-{i % 50}",
                    "source": "factory",
                }
            )
            me.append(
                {
                    "execution_id": i,
                    "input_tokens": 1000 + i,
                    "output_tokens": 100 + i % 50,
                    "total_tokens": 1100 + i + i % 50,
                    "cost_usd": 0.00001 * (i % 100),
                }
            )
            for seq, kind in enumerate(("request", "response")):
                it.append(
                    {
                        "execution_id": i,
                        "seq": seq,
                        "kind": kind,
                        "tool_name": None,
                        "arguments": None,
                        "result": PLANTED if i % 10 == 0 else "ok",
                        "is_error": False,
                        "duration_s": 0.5,
                        "started_at": started,
                    }
                )
        with engine.begin() as conn:
            conn.execute(executions.insert(), ex)
            conn.execute(execution_metrics.insert(), me)
            conn.execute(interactions.insert(), it)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('executions', 'id'), "
                "(SELECT max(id) FROM executions))"
            )


def write_users(settings: Settings, users: dict[str, str], password: str = "secret-pass") -> None:
    """Make the users table hold exactly these users (name → role), with cheap bcrypt rounds.

    Users not named are removed (their sessions end, their tokens die); named ones get the role.
    """
    engine = get_engine(settings.db_url)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    for name in set(auth.load_users(engine)) - set(users):
        auth.remove_user(engine, username=name, actor="test")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for name, role in users.items():
            found = auth.find_user(conn, name)
            if found is not None:
                conn.execute(
                    update(users_table).where(users_table.c.id == found.id).values(role=role)
                )
                continue
            conn.execute(
                users_table.insert().values(
                    id=uuid.uuid4().hex,
                    username=name,
                    name=name.title(),
                    email=f"{name}@example.com",
                    password_hash=hashed,
                    role=role,
                    created_at=now,
                    password_changed_at=now,
                )
            )


def insert_export(
    engine: Engine,
    *,
    owner: str,
    status: str = "running",
    export_id: str | None = None,
    at: datetime | None = None,
    **values: Any,
) -> str:
    """An export row written straight to the database, with no job behind it; returns its id."""
    export_id = export_id or secrets.token_urlsafe(18)
    now = at or datetime.now(UTC)
    row: dict[str, Any] = {
        "id": export_id,
        "owner": owner,
        "dataset": "evaluation-results",
        "spec": json.dumps({"filters": {}, "columns": None, "rename": {}}),
        "privacy": "standard",
        "format": "csv",
        "status": status,
        "rows_done": 0,
        "interface": "cli",
        "cancel_requested": False,
        "created_at": now,
        "heartbeat_at": now,
    }
    row.update(values)
    with engine.begin() as conn:
        conn.execute(exports.insert().values(**row))
    return export_id


def take_slot(engine: Engine, owner: str, slot: int, export_id: str, at: datetime) -> None:
    """The concurrency slot ``slot`` of ``owner``, held by ``export_id``."""
    with engine.begin() as conn:
        conn.execute(
            export_slots.insert().values(owner=owner, slot=slot, export_id=export_id, taken_at=at)
        )


def hold_slots(engine: Engine, owner: str, count: int, *, at: datetime | None = None) -> list[str]:
    """``count`` running exports of ``owner`` with their concurrency slots, as another process's."""
    now = at or datetime.now(UTC)
    ids = []
    for n in range(count):
        ids.append(insert_export(engine, owner=owner, export_id=f"held-{owner}-{n}", at=now))
        take_slot(engine, owner, n, ids[-1], now)
    return ids
