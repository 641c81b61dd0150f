"""Claude Code ``post_tool_use.json`` hook logs: a JSON array of hook events.

Only events whose ``tool_name`` ends in ``prompt_nano_agent``
(``mcp__nano-agent__prompt_nano_agent``) are imported; other tool calls are counted as skipped.
``tool_input`` is the request; ``tool_response`` the response, as an object, as MCP text content
(``[{"type": "text", "text": "<json>"}]``, ``{"content": [...]}``), or wrapped as
``{"result": ...}``. A text that is not JSON is stored as a failed run whose ``error`` is that
text (an MCP tool error).

``session_id`` and ``cwd`` are kept (privacy decides later what leaves); ``user`` is the home
directory's user name in ``cwd`` or ``transcript_path`` (``/home/ann``, ``/Users/ann``) or null.
``started_at`` is the event's ``timestamp`` if a logger added one, else the response's
``metadata.timestamp``, else nano-agent's commit date plus the event's index in seconds. Each
event's ``source_key`` is a hash of its content (or its ``tool_use_id``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nano_export.importers.records import (
    ExecutionRecord,
    ParsedFile,
    content_hash,
    fallback_time,
    import_error,
    user_from_path,
)
from nano_export.importers.responses import (
    ResponseError,
    execution_from_response,
    parse_timestamp,
)

FORMAT = "hook-log"
TOOL_SUFFIX = "prompt_nano_agent"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def iter_array(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array with the line each starts on."""
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        raise import_error(path, _line_of(text, pos), "expected a JSON array of hook events")
    pos += 1
    expect_value = True
    first = True
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            raise import_error(path, _line_of(text, pos), "invalid JSON: the array is not closed")
        if text[pos] == "]" and (first or not expect_value):
            rest = text[pos + 1 :].strip()
            if rest:
                at = text.index(rest[0], pos + 1)
                raise import_error(path, _line_of(text, at), "invalid JSON: extra data after ']'")
            return
        if not expect_value:
            if text[pos] != ",":
                raise import_error(path, _line_of(text, pos), "invalid JSON: expected ',' or ']'")
            pos += 1
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            msg = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise import_error(path, exc.lineno, msg) from None
        yield _line_of(text, pos), value
        pos, expect_value, first = end, False, False


def _decode_text(text: str) -> Mapping[str, Any] | str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, Mapping) else text


def unwrap_response(raw: Any) -> Mapping[str, Any] | str:
    """The response object inside a ``tool_response``, or its text when that is not JSON."""
    if isinstance(raw, str):
        return _decode_text(raw)
    if isinstance(raw, list):
        texts = [
            item["text"]
            for item in raw
            if isinstance(item, Mapping) and isinstance(item.get("text"), str)
        ]
        if not texts:
            raise ResponseError("tool_response holds no text content")
        return _decode_text("".join(texts))
    if isinstance(raw, Mapping):
        if "success" in raw:
            return raw
        for key in ("structuredContent", "content", "result"):
            if key in raw:
                return unwrap_response(raw[key])
    raise ResponseError("tool_response is neither a response object nor MCP text content")


def _execution(event: Mapping[str, Any], index: int, source: str) -> ExecutionRecord:
    request = event.get("tool_input") or {}
    if not isinstance(request, Mapping):
        raise ResponseError("tool_input is not an object")
    if "tool_response" not in event:
        raise ResponseError("event has no tool_response")
    response = unwrap_response(event["tool_response"])
    if isinstance(response, str):
        response = {"success": False, "error": response}
    session_id = event.get("session_id")
    cwd = event.get("cwd")
    transcript = event.get("transcript_path")
    for name, value in (("session_id", session_id), ("cwd", cwd), ("transcript_path", transcript)):
        if value is not None and not isinstance(value, str):
            raise ResponseError(f"{name} is not a string")
    key = event.get("tool_use_id")
    if not isinstance(key, str) or not key:
        key = content_hash(json.dumps(event, sort_keys=True, ensure_ascii=False))
    return execution_from_response(
        response,
        request,
        source_key=f"hook:{key}",
        source=source,
        started_at=parse_timestamp(event.get("timestamp")),
        fallback_started_at=fallback_time(index),
        user=user_from_path(cwd, transcript),
        session_id=session_id,
        cwd=cwd,
    )


def parse(text: str, path: str) -> ParsedFile:
    """Read a hook log; raises ``ImportFailed`` naming the event's line that cannot be read."""
    source = f"{FORMAT}:{Path(path).name}"
    executions: list[ExecutionRecord] = []
    skipped = 0
    for index, (line, event) in enumerate(iter_array(text, path), start=1):
        if not isinstance(event, Mapping):
            raise import_error(path, line, "hook event is not a JSON object")
        tool = event.get("tool_name")
        if not isinstance(tool, str) or not tool.endswith(TOOL_SUFFIX):
            skipped += 1
            continue
        try:
            executions.append(_execution(event, index, source))
        except ResponseError as exc:
            raise import_error(path, line, str(exc)) from None
    return ParsedFile(format=FORMAT, executions=tuple(executions), skipped=skipped)
