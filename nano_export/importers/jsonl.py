"""JSONL of nano-agent responses: one ``prompt_nano_agent`` response per line.

A line may also carry the request's ``agentic_prompt``, ``model``, ``provider`` and an ISO 8601
``timestamp`` (the run's ``started_at``); ``metadata.timestamp`` is used next. Without either, the
line is placed at nano-agent's commit date (2025-08-10T00:00:00Z) plus its line number in seconds,
so the same file always imports the same way.

Each line's ``source_key`` is a hash of its JSON content: importing the file again, or a longer
version of it with lines appended, adds only the lines not seen before. Blank lines are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from nano_export.importers.records import (
    ExecutionRecord,
    ParsedFile,
    content_hash,
    fallback_time,
    import_error,
)
from nano_export.importers.responses import (
    ResponseError,
    execution_from_response,
    parse_timestamp,
)

FORMAT = "jsonl"


def parse(text: str, path: str) -> ParsedFile:
    """Read a JSONL file; raises ``ImportFailed`` naming the first line that cannot be read."""
    source = f"{FORMAT}:{Path(path).name}"
    executions: list[ExecutionRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise import_error(path, number, msg) from None
        if not isinstance(record, Mapping):
            raise import_error(path, number, "expected a JSON object (one response per line)")
        canonical = json.dumps(record, sort_keys=True, ensure_ascii=False)
        try:
            executions.append(
                execution_from_response(
                    record,
                    record,
                    source_key=f"jsonl:{content_hash(canonical)}",
                    source=source,
                    started_at=parse_timestamp(record.get("timestamp")),
                    fallback_started_at=fallback_time(number),
                )
            )
        except ResponseError as exc:
            raise import_error(path, number, str(exc)) from None
    return ParsedFile(format=FORMAT, executions=tuple(executions))
