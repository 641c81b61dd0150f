"""The SQL schema shared by every process: evaluation data, pricing, exports, audit and tokens.

Defined with SQLAlchemy Core so that bulk inserts and streamed reads stay cheap. Alembic
migrations in ``nano_export/migrations`` create and upgrade it; this module is their source
of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)

model_pricing = Table(
    "model_pricing",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(32), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_per_m", Float, nullable=False),
    Column("output_per_m", Float, nullable=False),
    Column("cached_input_per_m", Float, nullable=False),
    Column("reasoning_per_m", Float, nullable=False),
    UniqueConstraint("version", "model", name="uq_model_pricing_version_model"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("source_key", String(255), nullable=False, unique=True),
    Column("test_id", String(128), nullable=False),
    Column("test_name", String(255), nullable=False),
    Column("hop", String(128), nullable=True),
    Column("lop", String(255), nullable=True),
    Column("source", String(255), nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("imported_at", UtcDateTime, nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("source_key", String(255), nullable=False, unique=True),
    Column("eval_run_id", BigId, ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=True),
    Column("test_id", String(128), nullable=True),
    Column("test_name", String(255), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("execution_time_s", Float, nullable=True),
    Column("prompt", Text, nullable=True),
    Column("response", Text, nullable=True),
    Column("user", String(128), nullable=True),
    Column("session_id", String(128), nullable=True),
    Column("cwd", Text, nullable=True),
    Column("source", String(255), nullable=False),
    Column("perf_grade", String(2), nullable=True),
    Column("speed_grade", String(2), nullable=True),
    Column("cost_grade", String(2), nullable=True),
    Column("overall_grade", String(2), nullable=True),
    Column("rank", Integer, nullable=True),
    Index("ix_executions_started_at", "started_at"),
    Index("ix_executions_provider_model", "provider", "model"),
    Index("ix_executions_model", "model"),
    Index("ix_executions_test_id", "test_id"),
    Index("ix_executions_success", "success"),
    Index("ix_executions_eval_run_id", "eval_run_id"),
    # Explore's aggregates: one covering scan in id order (merge-joins with the metrics index
    # below), and an index walk for the exact median (migration 0003).
    Index(
        "ix_executions_explore",
        "id",
        "provider",
        "model",
        "started_at",
        "success",
        "execution_time_s",
    ),
    Index("ix_executions_execution_time_s", "execution_time_s"),
)

execution_metrics = Table(
    "execution_metrics",
    metadata,
    Column(
        "execution_id",
        BigId,
        ForeignKey("executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("total_tokens", BigInteger, nullable=True),
    Column("cached_tokens", BigInteger, nullable=True),
    Column("reasoning_tokens", BigInteger, nullable=True),
    Column("input_cost_usd", Float, nullable=True),
    Column("output_cost_usd", Float, nullable=True),
    Column("cached_savings_usd", Float, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("pricing_version", String(32), nullable=True),
    Index("ix_execution_metrics_cost", "execution_id", "cost_usd"),
    # The Rows page sorted by cost walks this one (migration 0008_rows_indexes).
    Index("ix_execution_metrics_cost_usd_id", "cost_usd", "execution_id"),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("execution_id", BigId, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # request | response | tool_call
    Column("tool_name", String(128), nullable=True),
    Column("arguments", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("is_error", Boolean, nullable=False, default=False),
    Column("duration_s", Float, nullable=True),
    Column("started_at", UtcDateTime, nullable=False),
    UniqueConstraint("execution_id", "seq", name="uq_interactions_execution_seq"),
)

exports = Table(
    "exports",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("spec", Text, nullable=False),  # frozen JSON: filters, columns, rename
    Column("privacy", String(16), nullable=False),
    Column("format", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rows_done", BigInteger, nullable=False, default=0),
    Column("rows_total", BigInteger, nullable=True),
    Column("bytes", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("file_path", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("interface", String(16), nullable=False),
    Column("worker", String(128), nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),
    # "thread" (a thread of the accepting process) or "queue" (a procrastinate job on any worker).
    Column("runner", String(16), nullable=False, default="thread", server_default="thread"),
    Column("attempt", Integer, nullable=False, default=0, server_default="0"),  # runs so far
    Index("ix_exports_owner_created", "owner", "created_at"),
    Index("ix_exports_status", "status"),
)

# One row per running export. The primary key (owner, slot) makes the per-user limit atomic on every
# database: taking a slot is an INSERT that either succeeds or violates the key.
export_slots = Table(
    "export_slots",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column(
        "export_id",
        String(40),
        ForeignKey("exports.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("taken_at", UtcDateTime, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("interface", String(16), nullable=True),
    Column("export_id", String(40), nullable=True),
    Column("dataset", String(64), nullable=True),
    Column("privacy", String(16), nullable=True),
    Column("rows", BigInteger, nullable=True),
    Column("reason", Text, nullable=True),
    Column("details", Text, nullable=True),  # JSON object
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_actor", "actor"),
    Index("ix_audit_events_event", "event"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(128), nullable=False),  # the user name the token acts for (display)
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    # The user record the token belongs to: a re-added name is a new id, so old tokens stay dead.
    Column("user_id", String(32), nullable=True),
    Column("label", String(128), nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Index("ix_api_tokens_name", "name"),
    Index("ix_api_tokens_user_id", "user_id"),
)

# Dashboard and API users. ``id`` is random and never reused: tokens and sessions point at it.
users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("email", String(255), nullable=True),
    Column("password_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("password_changed_at", UtcDateTime, nullable=False),
)

# One row per login. The cookie carries the random session id; only its SHA-256 is stored.
login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Index("ix_login_sessions_user_id", "user_id"),
)

# Failed logins per key (``user:NAME``, ``addr:IP``, ``token:ADDR``) for the exponential back-off.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UtcDateTime, nullable=False),
    Column("blocked_until", UtcDateTime, nullable=True),
)

# Values every process of an installation shares: the generated signing secret, one-off markers.
instance_values = Table(
    "instance_values",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# A saved export spec run on a cadence and mailed to recipients. ``next_run_at`` is the claim token:
# a scheduler runs a schedule only if its UPDATE moving ``next_run_at`` on matched the old value.
schedules = Table(
    "schedules",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("spec", Text, nullable=False),  # JSON of the ExportRequest
    Column("privacy", String(16), nullable=False),
    Column("cadence", String(8), nullable=False),  # daily | weekly
    Column("weekday", Integer, nullable=True),  # 0 = Monday … 6 = Sunday (weekly only)
    Column("at_time", String(5), nullable=False),  # HH:MM local time
    Column("timezone", String(64), nullable=False),  # IANA zone name
    Column("recipients", Text, nullable=False),  # JSON list of addresses
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_run_at", UtcDateTime, nullable=True),
    Column("next_run_at", UtcDateTime, nullable=False),
    Column("last_export_id", String(40), nullable=True),
    Index("ix_schedules_next_run_at", "next_run_at"),
    Index("ix_schedules_owner", "owner"),
)

# A saved view: a named dataset, filter spec and columns, private to its owner or shared with the
# team. Names are unique per owner; a teammate's shared view is named OWNER/NAME.
saved_views = Table(
    "saved_views",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("spec", Text, nullable=False),  # JSON: {"filters": {...}, "columns": [...] | null}
    Column("shared", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("owner", "name", name="uq_saved_views_owner_name"),
    Index("ix_saved_views_shared", "shared"),
)


#: One row per cached dataset family: random tokens that triggers replace in every transaction that
#: writes the executions or their metrics — ``appended`` on INSERT, ``changed`` on UPDATE, DELETE or
#: TRUNCATE (migration 0009). The in-memory columns of Explore compare them before each use.
data_versions = Table(
    "data_versions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("appended", String(32), nullable=False),
    Column("changed", String(32), nullable=False),
)


def is_ours(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    """Whether a database object belongs to this schema, for Alembic's comparisons.

    On PostgreSQL, procrastinate's queue tables (``procrastinate_*``) live beside ours; their
    schema is procrastinate's, applied by migration 0006, and not described here.
    """
    table = name if type_ == "table" else parent_names.get("table_name")
    return not (table or "").startswith("procrastinate_")
