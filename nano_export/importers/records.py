"""What every importer produces: plain records of runs, executions, metrics and interactions.

Parsers turn a source file into these records without touching the database; ``store`` writes them
in one transaction per file. Helpers here hold the rules all formats share: cost arithmetic, the
deterministic fallback clock and the request/response interactions of an execution.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from nano_export.errors import ImportFailed
from nano_export.pricing import PRICING_VERSION, compute_costs

#: nano-agent's commit date (7518889, 2025-08-10). Sources without timestamps are placed at
#: deterministic offsets from it, so importing the same file always gives the same ``started_at``.
NANO_AGENT_EPOCH = datetime(2025, 8, 10, tzinfo=UTC)

InteractionKind = Literal["request", "response", "tool_call"]

_HOME_DIR = re.compile(r"(?:^|[\\/])(?:home|Users)[\\/]([^\\/\s]+)", re.IGNORECASE)


def import_error(path: str, line: int | None, reason: str) -> ImportFailed:
    """The error for a file that cannot be imported: ``path:line: reason``."""
    where = f"{path}:{line}" if line is not None else path
    return ImportFailed(f"{where}: {reason}")


def content_hash(text: str) -> str:
    """A short, stable hash of text (line endings normalised) for source keys."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32]


def user_from_path(*paths: str | None) -> str | None:
    """The user name of a home directory in a path (``/home/ann/…``, ``/Users/ann/…``), if any."""
    for path in paths:
        if path:
            match = _HOME_DIR.search(path)
            if match:
                return match.group(1)
    return None


def fallback_time(offset_s: float) -> datetime:
    """A deterministic ``started_at`` for sources without one: the epoch plus ``offset_s``."""
    return NANO_AGENT_EPOCH + timedelta(seconds=offset_s)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Token counts and costs of one execution (any of them may be unknown)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    input_cost_usd: float | None = None
    output_cost_usd: float | None = None
    cached_savings_usd: float | None = None
    cost_usd: float | None = None
    pricing_version: str | None = None


def build_metrics(
    model: str,
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    total_tokens: int | None = None,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    cost_usd: float | None = None,
) -> Metrics:
    """Metrics with the cost split from the pricing table when the model is priced.

    The source's own total cost wins over the pricing table's; the table fills it in only when the
    source has none. Savings stay unknown when the source does not report cached tokens.
    """
    if total_tokens is None and input_tokens is not None and output_tokens is not None:
        total_tokens = input_tokens + output_tokens
    costs = None
    if input_tokens is not None and output_tokens is not None:
        costs = compute_costs(
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens or 0,
            reasoning_tokens=reasoning_tokens or 0,
        )
    tokens = Metrics(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=cost_usd,
    )
    if costs is None:
        return tokens
    return replace(
        tokens,
        input_cost_usd=costs.input_cost_usd,
        output_cost_usd=costs.output_cost_usd,
        cached_savings_usd=costs.cached_savings_usd if cached_tokens is not None else None,
        cost_usd=cost_usd if cost_usd is not None else costs.cost_usd,
        pricing_version=PRICING_VERSION,
    )


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """A request, tool call or response inside an execution."""

    seq: int
    kind: InteractionKind
    started_at: datetime
    tool_name: str | None = None
    arguments: str | None = None
    result: str | None = None
    is_error: bool = False
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call reported by an agent response."""

    tool_name: str
    arguments: str | None
    result: str | None
    is_error: bool
    started_at: datetime | None
    duration_s: float | None


def build_interactions(
    *,
    started_at: datetime,
    prompt: str | None,
    response: str | None,
    error: str | None,
    success: bool,
    execution_time_s: float | None,
    tool_calls: tuple[ToolCall, ...] = (),
) -> tuple[InteractionRecord, ...]:
    """The request, the tool calls in order and the response of one execution (seq from 1)."""
    out = [InteractionRecord(seq=1, kind="request", started_at=started_at, arguments=prompt)]
    for call in tool_calls:
        out.append(
            InteractionRecord(
                seq=len(out) + 1,
                kind="tool_call",
                started_at=call.started_at or started_at,
                tool_name=call.tool_name,
                arguments=call.arguments,
                result=call.result,
                is_error=call.is_error,
                duration_s=call.duration_s,
            )
        )
    finished = started_at + timedelta(seconds=execution_time_s or 0)
    out.append(
        InteractionRecord(
            seq=len(out) + 1,
            kind="response",
            started_at=finished,
            result=response if success else (error or response),
            is_error=not success,
            duration_s=execution_time_s,
        )
    )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One agent execution: one model's run of one test, or one ad-hoc run."""

    source_key: str
    source: str
    provider: str
    model: str
    started_at: datetime
    success: bool
    error: str | None = None
    execution_time_s: float | None = None
    prompt: str | None = None
    response: str | None = None
    test_id: str | None = None
    test_name: str | None = None
    user: str | None = None
    session_id: str | None = None
    cwd: str | None = None
    perf_grade: str | None = None
    speed_grade: str | None = None
    cost_grade: str | None = None
    overall_grade: str | None = None
    rank: int | None = None
    metrics: Metrics = field(default_factory=Metrics)
    interactions: tuple[InteractionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One evaluation run (one HOP/LOP test across models)."""

    source_key: str
    source: str
    test_id: str
    test_name: str
    started_at: datetime | None
    hop: str | None = None
    lop: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """Everything read from one file, ready to store."""

    format: str
    executions: tuple[ExecutionRecord, ...]
    run: RunRecord | None = None
    skipped: int = 0  # records of the file that are not nano-agent executions (other tools)
