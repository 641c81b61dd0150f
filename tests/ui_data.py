"""Small, known evaluation data for the dashboard and query tests (inserted with SQL Core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from nano_export.schema import execution_metrics, executions

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
