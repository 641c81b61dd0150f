"""Small, known evaluation data for the dashboard and query tests (inserted with SQL Core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from nano_export.schema import execution_metrics, executions, interactions

#: provider, model, success, execution_time_s, cost_usd — one tuple per execution.
ROWS: list[tuple[str, str, bool, float, float]] = [
    ("openai", "gpt-5-mini", True, 1.0, 0.010),
    ("openai", "gpt-5-mini", True, 2.0, 0.020),
    ("openai", "gpt-5-mini", False, 3.0, 0.030),
    ("openai", "gpt-5", True, 4.0, 0.100),
    ("anthropic", "claude-opus-4-1-20250805", True, 5.0, 0.500),
    ("anthropic", "claude-opus-4-1-20250805", False, 6.0, 0.600),
    ("ollama", "gpt-oss:20b", True, 7.0, 0.0),
    ("ollama", "gpt-oss:20b", True, 10.0, 0.0),
]
START = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
SECRET_PROMPT = "Use key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234 and mail bob@example.com"


def insert_rows(engine: Engine, rows: list[tuple[str, str, bool, float, float]] = ROWS) -> None:
    """Insert one execution (and its metrics) per tuple, a day apart from START."""
    with engine.begin() as conn:
        for n, (provider, model, success, latency, cost) in enumerate(rows, start=1):
            conn.execute(
                executions.insert().values(
                    id=n,
                    source_key=f"ui-test-{n}",
                    test_id=f"t{n % 3}",
                    test_name=f"Test {n % 3}",
                    provider=provider,
                    model=model,
                    started_at=START + timedelta(days=n - 1),
                    success=success,
                    error=None if success else "boom: token sk-ant-api03-SECRETSECRETSECRET",
                    execution_time_s=latency,
                    prompt=SECRET_PROMPT,
                    response="The capital is Washington",
                    user="alice",
                    session_id=f"session-{n}",
                    source="ui-test",
                )
            )
            conn.execute(
                execution_metrics.insert().values(
                    execution_id=n,
                    input_tokens=100,
                    output_tokens=50,
                    total_tokens=150,
                    cost_usd=cost,
                )
            )


#: The trace of execution 1: kind, tool name, arguments — in order.
TRACE: list[tuple[str, str | None, str | None]] = [
    ("request", None, None),
    ("tool_call", "read_file", '{"path": "notes.txt"}'),
    (
        "tool_call",
        "write_file",
        '{"path": "out.txt", "token": "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}',
    ),
    ("tool_call", "list_directory", '{"path": "."}'),
    ("response", None, None),
]


def insert_interactions(engine: Engine, execution_id: int = 1) -> None:
    """Insert ``TRACE`` as the interactions of one execution, a second apart (seq 1, 2, …)."""
    with engine.begin() as conn:
        for seq, (kind, tool, arguments) in enumerate(TRACE, start=1):
            conn.execute(
                interactions.insert().values(
                    execution_id=execution_id,
                    seq=seq,
                    kind=kind,
                    tool_name=tool,
                    arguments=arguments,
                    result="ok" if tool else None,
                    is_error=False,
                    duration_s=0.5 if tool else None,
                    started_at=START + timedelta(seconds=seq),
                )
            )
