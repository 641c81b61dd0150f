"""One ``prompt_nano_agent`` response (and its request) as an execution record.

Shared by the JSONL and hook-log importers. The response is nano-agent's
``PromptNanoAgentResponse``: ``success``, ``result``, ``error``, ``execution_time_seconds`` and
``metadata`` (``model``, ``provider``, ``timestamp``, ``token_usage`` with ``input_tokens``,
``output_tokens``, ``cached_tokens``, ``reasoning_tokens``, ``total_tokens``, ``total_cost``).
``execution_time_seconds`` may sit in ``metadata`` too. Tool calls, when a response carries them
(``tool_calls`` at the top level or in ``metadata``, each with ``tool_name``, ``arguments``,
``result``, ``error``, ``timestamp``, ``duration_seconds``), become ``tool_call`` interactions
between the request and the response.

Without a model in the request or the response, nano-agent's own default applies
(``gpt-5-mini`` on ``openai``). Timestamps without a zone are taken as UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nano_export.importers.records import (
    ExecutionRecord,
    ToolCall,
    build_interactions,
    build_metrics,
)
from nano_export.normalize import normalize

DEFAULT_MODEL = "gpt-5-mini"
DEFAULT_PROVIDER = "openai"


class ResponseError(ValueError):
    """A response that cannot be read; the caller adds the file and line."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _int(usage: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = usage.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ResponseError(f"token_usage.{key} {value!r} is not a number")
        try:
            number = float(str(value).replace(",", ""))
        except ValueError:
            raise ResponseError(f"token_usage.{key} {value!r} is not a number") from None
        if number < 0 or number != int(number):
            raise ResponseError(f"token_usage.{key} {value!r} is not a whole token count")
        return int(number)
    return None


def _float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ResponseError(f"{what} {value!r} is not a number")
    try:
        return float(str(value).replace("$", "").replace(",", ""))
    except ValueError:
        raise ResponseError(f"{what} {value!r} is not a number") from None


def parse_timestamp(value: Any, what: str = "timestamp") -> datetime | None:
    """An ISO 8601 timestamp as aware UTC (naive values are taken as UTC)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ResponseError(f"{what} {value!r} is not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ResponseError(f"{what} {value!r} is not an ISO 8601 timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ResponseError("tool_calls is not a list")
    calls = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping):
            raise ResponseError(f"tool call #{i} is not an object")
        name = item.get("tool_name") or item.get("name") or item.get("tool")
        if not isinstance(name, str) or not name:
            raise ResponseError(f"tool call #{i} has no tool_name")
        error = _text(item.get("error"))
        calls.append(
            ToolCall(
                tool_name=name,
                arguments=_text(item.get("arguments", item.get("args"))),
                result=error if error else _text(item.get("result")),
                is_error=bool(error) or item.get("is_error") is True,
                started_at=parse_timestamp(item.get("timestamp"), f"tool call #{i} timestamp"),
                duration_s=_float(item.get("duration_seconds"), f"tool call #{i} duration"),
            )
        )
    return tuple(calls)


def execution_from_response(
    response: Mapping[str, Any],
    request: Mapping[str, Any],
    *,
    source_key: str,
    source: str,
    fallback_started_at: datetime,
    started_at: datetime | None = None,
    user: str | None = None,
    session_id: str | None = None,
    cwd: str | None = None,
) -> ExecutionRecord:
    """An execution from a response and its request; raises ``ResponseError`` naming the field."""
    success = response.get("success")
    if not isinstance(success, bool):
        raise ResponseError("not a prompt_nano_agent response: 'success' must be true or false")
    metadata = response.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ResponseError("'metadata' is not an object")
    usage = metadata.get("token_usage") or response.get("token_usage") or {}
    if not isinstance(usage, Mapping):
        raise ResponseError("'token_usage' is not an object")
    model_name = request.get("model") or metadata.get("model") or DEFAULT_MODEL
    provider_name = request.get("provider") or metadata.get("provider")
    if not isinstance(model_name, str) or (
        provider_name is not None and not isinstance(provider_name, str)
    ):
        raise ResponseError("'model' and 'provider' must be strings")
    if provider_name is None and model_name == DEFAULT_MODEL:
        provider_name = DEFAULT_PROVIDER
    provider, model = normalize(model_name, provider_name)
    seconds = _float(
        response.get("execution_time_seconds", metadata.get("execution_time_seconds")),
        "execution_time_seconds",
    )
    when = (
        started_at
        or parse_timestamp(metadata.get("timestamp"), "metadata.timestamp")
        or fallback_started_at
    )
    prompt = _text(request.get("agentic_prompt"))
    result = _text(response.get("result"))
    error = _text(response.get("error"))
    if not success and not error:
        error = "the agent reported failure without an error message"
    tool_calls = _tool_calls(response.get("tool_calls", metadata.get("tool_calls")))
    return ExecutionRecord(
        source_key=source_key[:255],
        source=source[:255],
        provider=provider,
        model=model,
        started_at=when,
        success=success,
        error=error,
        execution_time_s=seconds,
        prompt=prompt,
        response=result,
        user=user[:128] if user else None,
        session_id=session_id[:128] if session_id else None,
        cwd=cwd,
        metrics=build_metrics(
            model,
            input_tokens=_int(usage, "input_tokens", "total_input_tokens", "prompt_tokens"),
            output_tokens=_int(usage, "output_tokens", "total_output_tokens", "completion_tokens"),
            total_tokens=_int(usage, "total_tokens"),
            cached_tokens=_int(usage, "cached_tokens", "cached_input_tokens"),
            reasoning_tokens=_int(usage, "reasoning_tokens"),
            cost_usd=_float(usage.get("total_cost", usage.get("cost_usd")), "total_cost"),
        ),
        interactions=build_interactions(
            started_at=when,
            prompt=prompt,
            response=result,
            error=error,
            success=success,
            execution_time_s=seconds,
            tool_calls=tool_calls,
        ),
    )
