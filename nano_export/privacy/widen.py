"""Widen a Python regular expression into a pre-screen that RE2 and PostgreSQL both accept.

The rules that redact are Python expressions with look-arounds, conditionals and back-references,
which neither RE2 (pyarrow, SQLite's ``regexp``) nor PostgreSQL can run. :func:`widen` rewrites one
into an expression that matches (as a search) every text the original matches, and possibly more:
look-arounds and anchors are dropped, a conditional becomes the alternation of its branches, a
back-reference matches anything, counted repetitions are capped and case-insensitivity becomes
character classes. Each step only widens, so the result is a sound pre-screen by construction.
"""

from __future__ import annotations

import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as p  # type: ignore[attr-defined]
from typing import Any, Literal

Dialect = Literal["re2", "pg"]

# A repetition asked {150,255} becomes {8,}: a lower bound that is lower only widens the match,
# and a hundred rules joined stay small enough for RE2's automaton to run at full speed (with 20,
# the joined screen ran 3.7 times slower than its parts run one by one).
REPEAT_CAP = 8
_SPACE = " \\t\\n\\r\\f\\v"
_WORD = "A-Za-z0-9_"
_CATEGORIES: dict[Any, tuple[str, bool]] = {
    c.CATEGORY_DIGIT: ("0-9", False),
    c.CATEGORY_NOT_DIGIT: ("0-9", True),
    c.CATEGORY_SPACE: (_SPACE, False),
    c.CATEGORY_NOT_SPACE: (_SPACE, True),
    c.CATEGORY_WORD: (_WORD, False),
    c.CATEGORY_NOT_WORD: (_WORD, True),
}
_META = set("\\.^$|?*+()[]{}-")
_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}


class Unsupported(ValueError):
    """The expression holds a construct that :func:`widen` cannot rewrite."""


def widen(
    pattern: str, *, dialect: Dialect = "re2", group: str | None = None, cap: int = REPEAT_CAP
) -> str:
    """An expression that matches every text ``pattern`` matches, in RE2 or PostgreSQL syntax.

    With ``group``, only that named group is widened: a search for the group's own text (the
    secret, without the context the rule needs around it) is then enough to flag the text.
    """
    tree = p.parse(pattern)
    items = list(tree)
    if group is not None:
        index = tree.state.groupdict.get(group)
        if index is None:
            raise Unsupported(f"no group named {group!r}")
        found = _find_group(items, index)
        if found is None:
            raise Unsupported(f"group {group!r} is not a plain group")
        items = found
    ignore = bool(tree.state.flags & re.IGNORECASE)
    dotall = bool(tree.state.flags & re.DOTALL)
    return _Writer(dialect, cap).seq(_trim_head(items), ignore=ignore, dotall=dotall, tail=True)


_REPEATS = (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT)
_SKIPPABLE = (c.ASSERT, c.ASSERT_NOT, c.AT)


def _is_class_repeat(op: Any, av: Any) -> bool:
    if op not in _REPEATS:
        return False
    body = list(av[2])
    return len(body) == 1 and body[0][0] in (c.IN, c.ANY, c.NOT_LITERAL)


def _trim_head(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """``items`` without the repeated character classes they start with, when a literal follows.

    A search for the rest finds every text the whole finds (what precedes a match of the rest is
    not looked at), and a screen that starts with a literal is far cheaper for RE2 than one whose
    every position may start a run of ``[0-9A-Za-z]``.
    """
    items = list(items)
    while items and items[0][0] in _SKIPPABLE:
        items = items[1:]
    if not items:
        return items
    op, av = items[0]
    if op is c.SUBPATTERN and len(items) > 1 and any(o is c.LITERAL for o, _ in items[1:]):
        # A group at the head: trimmed inside, the rest kept.
        group, add_flags, del_flags, sub = av
        return [(op, (group, add_flags, del_flags, _trim_head(list(sub)))), *items[1:]]
    start = 0
    while start < len(items) - 1 and (
        _is_class_repeat(*items[start]) or items[start][0] in _SKIPPABLE
    ):
        start += 1
    if start and _has_literal(items[start : start + 1]):
        return items[start:]
    return items


def _has_literal(items: list[tuple[Any, Any]]) -> bool:
    """Whether ``items`` start with a literal: a character, a branch of them, or a group."""
    if not items:
        return False
    op, av = items[0]
    if op is c.LITERAL:
        return True
    if op is c.BRANCH:
        return all(_has_literal(list(branch)) for branch in av[1])
    if op is c.SUBPATTERN:
        return _has_literal(list(av[3]))
    return False


def _find_group(items: list[tuple[Any, Any]], index: int) -> list[tuple[Any, Any]] | None:
    for op, av in items:
        children: list[list[tuple[Any, Any]]] = []
        if op is c.SUBPATTERN:
            if av[0] == index:
                return list(av[3])
            children = [list(av[3])]
        elif op is c.BRANCH:
            children = [list(branch) for branch in av[1]]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            children = [list(av[2])]
        elif op is c.GROUPREF_EXISTS:
            children = [list(av[1])] + ([list(av[2])] if av[2] is not None else [])
        elif op in (c.ATOMIC_GROUP,):
            children = [list(av)]
        for child in children:
            found = _find_group(child, index)
            if found is not None:
                return found
    return None


class _Writer:
    def __init__(self, dialect: Dialect, cap: int) -> None:
        self.dialect = dialect
        self.cap = cap

    def seq(
        self, items: list[tuple[Any, Any]], *, ignore: bool, dotall: bool, tail: bool = False
    ) -> str:
        """The items in order. In the tail of the expression (nothing must match after it), a
        positive look-ahead is kept as text to match and ends the screen: what follows it is left
        out, which only widens, and the screen keeps what the look-ahead demands (``(?=@)``)."""
        parts: list[str] = []
        for index, (op, av) in enumerate(items):
            last = tail and index == len(items) - 1
            if tail and op is c.ASSERT and av[0] == 1:
                parts.append("(?:" + self.seq(list(av[1]), ignore=ignore, dotall=dotall) + ")")
                break
            parts.append(self.item(op, av, ignore=ignore, dotall=dotall, tail=last))
        return "".join(parts)

    def any(self, dotall: bool) -> str:
        # PostgreSQL's '.' matches a new line too: only wider.
        return "." if self.dialect == "pg" or not dotall else "[\\s\\S]"

    def item(self, op: Any, av: Any, *, ignore: bool, dotall: bool, tail: bool = False) -> str:
        if op is c.LITERAL:
            codes = _cased(av, ignore)
            return _char(codes[0], False) if len(codes) == 1 else self._class_of(codes)
        if op is c.NOT_LITERAL:
            return "[^" + "".join(_char(code, True) for code in _cased(av, ignore)) + "]"
        if op is c.ANY:
            return self.any(dotall)
        if op is c.IN:
            return self.char_class(av, ignore)
        if op is c.BRANCH:
            branches = [self.seq(list(b), ignore=ignore, dotall=dotall, tail=tail) for b in av[1]]
            return "(?:" + "|".join(branches) + ")"
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            sub_ignore = (ignore or bool(add_flags & re.I)) and not del_flags & re.I
            sub_dotall = (dotall or bool(add_flags & re.S)) and not del_flags & re.S
            inner = self.seq(list(sub), ignore=sub_ignore, dotall=sub_dotall, tail=tail)
            return "(?:" + inner + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            body = "(?:" + self.seq(list(sub), ignore=ignore, dotall=dotall) + ")"
            return _repeat(body, lo, hi, self.cap)
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            return ""  # a look-around or an anchor only narrows: leaving it out widens
        if op is c.GROUPREF:
            return self.any(True) + "*"
        if op is c.GROUPREF_EXISTS:
            _group, yes, no = av
            no_text = self.seq(list(no), ignore=ignore, dotall=dotall) if no is not None else ""
            return "(?:" + self.seq(list(yes), ignore=ignore, dotall=dotall) + "|" + no_text + ")"
        if op is c.ATOMIC_GROUP:
            return "(?:" + self.seq(list(av), ignore=ignore, dotall=dotall) + ")"
        raise Unsupported(f"operator {op}")

    @staticmethod
    def _class_of(codes: list[int]) -> str:
        return "[" + "".join(_char(code, True) for code in codes) + "]"

    def char_class(self, items: list[tuple[Any, Any]], ignore: bool) -> str:
        negate = False
        parts: list[str] = []
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                parts.extend(_char(code, True) for code in _cased(av, ignore))
            elif op is c.RANGE:
                lo, hi = av
                parts.append(f"{_char(lo, True)}-{_char(hi, True)}")
                if ignore and chr(lo).isalpha() and chr(hi).isalpha():
                    swapped = f"{_char(ord(chr(lo).swapcase()), True)}-"
                    parts.append(swapped + _char(ord(chr(hi).swapcase()), True))
            elif op is c.CATEGORY:
                body, inverted = _CATEGORIES[av]
                if inverted:
                    if negate or len(items) > 1:
                        return self.any(True)  # e.g. [^\S\n]: anything is wider
                    return f"[^{body}]"
                parts.append(body)
            else:
                raise Unsupported(f"class item {op}")
        return ("[^" if negate else "[") + "".join(parts) + "]"


def _repeat(body: str, lo: int, hi: Any, cap: int) -> str:
    lo = min(lo, cap)
    if hi is c.MAXREPEAT or hi > cap:
        if lo == 0:
            return body + "*"
        return body + "+" if lo == 1 else f"{body}{{{lo},}}"
    if lo == hi:
        return body if lo == 1 else f"{body}{{{lo}}}"
    return f"{body}{{{lo},{hi}}}"


def _cased(code: int, ignore: bool) -> list[int]:
    ch = chr(code)
    if ignore and ch.lower() != ch.upper():
        return sorted({ord(ch.lower()), ord(ch.upper())})
    return [code]


def _char(code: int, in_class: bool) -> str:
    ch = chr(code)
    if ch in _CONTROL:
        return _CONTROL[ch]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if ch in _META or (in_class and ch == "^"):
        return "\\" + ch
    return ch


MIN_FACTOR = 4


def factor(pattern: str, *, group: str | None = None) -> str | None:
    """A literal that every match of ``pattern`` (or of its ``group``) contains, as an expression
    (an alternation of literals when the expression branches), or None when it has none of at
    least ``MIN_FACTOR`` characters.

    A screen made of such literals is much cheaper for RE2 to build than the widened expression,
    and still sound: no text without the literal can match.
    """
    tree = p.parse(pattern)
    items = list(tree)
    if group is not None:
        index = tree.state.groupdict.get(group)
        found = _find_group(items, index) if index is not None else None
        if found is None:
            return None
        items = found
    if tree.state.flags & re.IGNORECASE:
        return None
    return _seq_factor(items)


def _seq_factor(items: list[tuple[Any, Any]]) -> str | None:
    best: str | None = None
    best_size = 0
    run: list[int] = []

    def close_run() -> None:
        nonlocal best, best_size
        if len(run) >= MIN_FACTOR and len(run) > best_size:
            best, best_size = "".join(_char(code, False) for code in run), len(run)
        run.clear()

    alternatives: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is c.LITERAL:
            run.append(av)
            continue
        close_run()
        if op is c.SUBPATTERN and not (av[1] & re.IGNORECASE):
            inner = _seq_factor(list(av[3]))
            if inner is not None:
                alternatives.append(inner)
        elif op is c.BRANCH:
            branches = [_seq_factor(list(branch)) for branch in av[1]]
            if all(branch is not None for branch in branches):
                alternatives.append("(?:" + "|".join(b for b in branches if b) + ")")
    if best is not None:
        return best
    return alternatives[0] if alternatives else None
