"""Linear-time regular expressions for filters evaluated inside SQLite.

SQLite has no regular expressions of its own; the ``~`` of a filter runs a function registered on
each connection. Python's backtracking ``re`` would let one pattern such as ``^(.+)+Z`` hold the
interpreter lock for minutes and freeze every thread of the server, so the function uses RE2,
whose matching time grows linearly with the text. RE2 refuses what it cannot do in linear time
(back-references, look-around); filters refuse those patterns up front with a clear message.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


@lru_cache(maxsize=256)
def compile_linear(pattern: str) -> Any:
    """The RE2 program of ``pattern``; ``re2.error`` when RE2 cannot run it in linear time."""
    return re2.compile(pattern, options=_OPTIONS)


def linear_error(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern``, or None when it accepts it."""
    try:
        compile_linear(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return None


def sqlite_regexp(pattern: str | None, value: str | None) -> bool | None:
    """SQLite's ``regexp(pattern, value)``: does ``value`` contain a match (NULL stays NULL)."""
    if pattern is None or value is None:
        return None
    return compile_linear(pattern).search(str(value)) is not None
