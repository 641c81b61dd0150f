"""Log lines for every process: key=value text or JSON lines, with export, user and interface.

``NANO_EXPORT_LOG_FORMAT`` picks the format (``text`` by default, ``json`` for log collectors).
This is the standard library's logging with formatters of our own, not structlog: every module
already logs through ``logging.getLogger(__name__)`` with ``extra=`` fields, the third-party loggers
(Streamlit, SQLAlchemy, procrastinate) use it too, and one handler formats them all alike — no
second logging system, no new dependency.

:func:`bind` attaches fields (``export_id``, ``user``, ``interface``) to every line logged in its
block, through a context variable, so a job's thread or a request's handler says it once. Every
line is scrubbed before it is written: credentials and API tokens become ``[REDACTED]`` and emails
and home-directory names are masked, in the message, in every field and in a traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

from nano_export import privacy

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS: Final = ("export_id", "user", "interface")
#: Our API tokens (``nxt_`` + 43 url-safe characters), whatever surrounds them.
_API_TOKEN = re.compile(r"nxt_[A-Za-z0-9_-]{16,}")
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HANDLER_NAME = "nano_export"

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "nano_export_log_context", default=None
)


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (those not None) to every log line written inside the block."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    token = _context.set(current)
    try:
        yield
    finally:
        _context.reset(token)


def scrub(text: str) -> str:
    """``text`` safe for a log: credentials, API tokens, emails and home folders masked."""
    return privacy.mask_personal(_API_TOKEN.sub(privacy.REDACTED, privacy.redact_credentials(text)))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context, then the record's ``extra`` fields (which win), scrubbed."""
    fields: dict[str, Any] = dict(_context.get() or {})
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    return {k: _clean(v) for k, v in fields.items()}


def _clean(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


class KeyValueFormatter(logging.Formatter):
    """``at=… level=INFO logger=… msg=… key=value …``: the record's fields included."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (a traceback follows on the next lines)."""
        parts = [
            f"at={self.formatTime(record)}",
            f"level={record.levelname}",
            f"logger={record.name}",
            f"msg={scrub(record.getMessage())!r}",
        ]
        parts += [f"{k}={v!r}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``at``, ``level``, ``logger``, ``msg``, the fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record, the traceback (if any) inside it as ``exc``."""
        data: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (unless given a stream)."""

    _fixed: Any = None

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._fixed = value


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``."""
    return JsonFormatter() if log_format == "json" else KeyValueFormatter()


def configure(
    log_format: LogFormat, *, level: int = logging.INFO, everything: bool = False
) -> None:
    """Send log lines at ``level`` to stderr in ``log_format``; idempotent.

    By default only the package's own logger gets the handler (a server whose framework logs in
    its own way); ``everything=True`` puts it on the root logger, so the libraries' lines (the job
    queue's, SQLAlchemy's) come out alike (the command line).
    """
    package, root = logging.getLogger("nano_export"), logging.getLogger()
    for logger in (package, root):
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(log_format))
    target = root if everything else package
    target.addHandler(handler)
    target.setLevel(level)
    if everything:
        package.setLevel(logging.NOTSET)
