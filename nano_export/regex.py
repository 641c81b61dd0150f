"""Linear-time regular expressions for filters evaluated inside SQLite.

SQLite has no regular expressions of its own; the ``~`` of a filter runs a function registered on
each connection. Python's backtracking ``re`` would let one pattern such as ``^(.+)+Z`` hold the
interpreter lock for minutes and freeze every thread of the server, so the function uses RE2,
whose matching time grows linearly with the text. RE2 refuses what it cannot do in linear time
(back-references, look-around); filters refuse those patterns up front with a clear message.

Linear in the text is not cheap in the pattern: a counted repetition such as ``[^u-z]{1000}``
unrolls into a thousand states, each visited for every character (53 s over ten rows of 100 KB
on PostgreSQL). Counted repetitions, nested ones multiplied, are bounded by ``MAX_REPEAT``.
"""

from __future__ import annotations

import importlib
import re
import warnings
from functools import lru_cache
from typing import Any, Final

import re2

#: The largest count a ``{m}``, ``{m,}`` or ``{m,n}`` may ask for (nested ones multiplied).
MAX_REPEAT: Final = 100
# Python's own regex parser, to find counted repetitions however they are nested.
_PARSER: Any = importlib.import_module("re._parser")
_UNBOUNDED: Final = importlib.import_module("re._constants").MAXREPEAT  # * and + repeat up to

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


def repetition_error(pattern: str, limit: int = MAX_REPEAT) -> str | None:
    """Why the counted repetitions of ``pattern`` are too large, or None when they are fine."""
    try:
        with warnings.catch_warnings():
            # "Possible nested set" for POSIX classes ([[:digit:]]): only the counts matter here.
            warnings.simplefilter("ignore", FutureWarning)
            tree = _PARSER.parse(pattern)
    except re.error:
        return None  # the syntax check reports it
    worst = _largest_count(tree, 1)
    if worst > limit:
        return (
            f"it repeats {worst} times; counted repetitions such as {{m}} or {{m,n}} may ask "
            f"for at most {limit} (nested ones multiplied)"
        )
    return None


def _largest_count(items: Any, outer: int) -> int:
    """The largest product of counts along any nesting of repetitions in a parsed pattern."""
    worst = 0
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = max(low, 0 if high == _UNBOUNDED else high)
            here = outer * max(count, 1)
            worst = max(worst, here if count > 1 else 0, _largest_count(sub, here))
        elif name == "SUBPATTERN":
            worst = max(worst, _largest_count(arg[-1], outer))
        elif name == "BRANCH":
            for branch in arg[1]:
                worst = max(worst, _largest_count(branch, outer))
        elif name in ("ASSERT", "ASSERT_NOT"):
            worst = max(worst, _largest_count(arg[1], outer))
    return worst
