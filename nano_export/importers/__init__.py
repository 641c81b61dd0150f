"""Importing nano-agent results: evaluation markdown, Claude Code hook logs and response JSONL.

Each file is read whole, then stored in one transaction: a file that cannot be read is refused
with ``ImportFailed("path:line: reason")`` and nothing of it is stored. Records carry stable
``source_key`` values, so importing a file again adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from nano_export.importers import eval_markdown, hook_log, jsonl
from nano_export.importers.records import ParsedFile, import_error
from nano_export.importers.store import store

log = logging.getLogger(__name__)

FORMATS = (eval_markdown.FORMAT, hook_log.FORMAT, jsonl.FORMAT)
_PARSERS: dict[str, Callable[[str, str], ParsedFile]] = {
    eval_markdown.FORMAT: eval_markdown.parse,
    hook_log.FORMAT: hook_log.parse,
    jsonl.FORMAT: jsonl.parse,
}


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What importing one file did."""

    path: str
    format: str
    added: int
    present: int
    skipped: int = 0

    def describe(self) -> str:
        """One line for people: ``name: 9 executions added (0 already present)``."""
        noun = "execution" if self.added == 1 else "executions"
        line = f"{self.path}: {self.added} {noun} added ({self.present} already present)"
        if self.skipped:
            line += f", {self.skipped} other tool calls skipped"
        return line


def read_text(path: Path) -> str:
    """A file's text as UTF-8 (a byte-order mark is dropped); unreadable files raise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise import_error(
            str(path), None, f"cannot read the file: {exc.strerror or exc}"
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise import_error(str(path), line, "not UTF-8 text") from None


def detect_format(path: Path, text: str) -> str:
    """The format of a file, from its extension and, when that is ambiguous, its content."""
    suffix = path.suffix.lower()
    head = text.lstrip()
    if suffix in {".md", ".markdown"}:
        return eval_markdown.FORMAT
    if suffix in {".jsonl", ".ndjson"}:
        return jsonl.FORMAT
    if head.startswith("["):
        return hook_log.FORMAT
    if head.startswith("{"):
        return jsonl.FORMAT
    if head.startswith("#") or "## Agent Responses" in text:
        return eval_markdown.FORMAT
    raise import_error(
        str(path),
        1,
        "unrecognised format: expected evaluation markdown (.md), a hook log (a JSON array) "
        "or JSONL of nano-agent responses",
    )


def parse_file(path: Path) -> ParsedFile:
    """Read and parse one file without storing anything."""
    text = read_text(path)
    return _PARSERS[detect_format(path, text)](text, str(path))


def import_file(engine: Engine, path: Path | str) -> ImportReport:
    """Import one file in one transaction; raises ``ImportFailed`` and stores nothing on error."""
    file_path = Path(path)
    parsed = parse_file(file_path)
    try:
        with engine.begin() as conn:
            result = store(conn, parsed)
    except IntegrityError:
        # Another process stored some of the same records between our check and our insert;
        # this transaction rolled back whole, and a second pass skips what is there now.
        log.info("import raced another process; retrying", extra={"path": str(path)})
        with engine.begin() as conn:
            result = store(conn, parsed)
    report = ImportReport(
        path=str(path),
        format=parsed.format,
        added=result.added,
        present=result.present,
        skipped=parsed.skipped,
    )
    log.info(
        "file imported",
        extra={
            "path": report.path,
            "format": report.format,
            "added": report.added,
            "present": report.present,
            "skipped": report.skipped,
        },
    )
    return report


def import_paths(engine: Engine, paths: Iterable[Path | str]) -> list[ImportReport]:
    """Import files in order, each in its own transaction; stops at the first file that fails.

    Files before a failing one stay imported (re-running after a fix is safe: imports are
    idempotent). The ``ImportFailed`` raised names the failing file and line.
    """
    return [import_file(engine, p) for p in paths]


__all__ = [
    "FORMATS",
    "ImportReport",
    "detect_format",
    "import_file",
    "import_paths",
    "parse_file",
]
