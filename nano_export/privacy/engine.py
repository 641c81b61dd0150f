"""The redaction engine: detectors find the characters of a secret; the engine masks them.

A :class:`Detector` is one kind of secret: a Python expression that marks the secret's characters
(its ``value`` group, or what follows its ``keep`` group, or the whole match) and an RE2 screen
widened from that expression (:mod:`nano_export.privacy.widen`), so that a cheap search tells which
detectors can match a text at all.

Text is read in every form it is stored in: as stored, and as read once more after undoing JSON
escapes (``\\n``, ``\\"``, ``\\u0070``) and URL encoding (``%3D``), up to two levels deep. A
secret found in a decoded view is masked on the stored characters it came from, so ``KEY=sk-…``
at the start of a JSON-escaped line is masked in the stored JSON text, and the JSON stays valid.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import re2

from nano_export.privacy.widen import REPEAT_CAP, factor, widen

REDACTED = "[REDACTED]"

Span = tuple[int, int]
_MAX_PASSES = 4
_WORD_TAIL = re.compile(r"[A-Za-z0-9_-]+")
_QUOTES = ('\\"', '"', "'")


@dataclass(frozen=True)
class Detector:
    """One kind of secret: where it is in a text, and a screen for every text it can be in."""

    name: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] | None = None
    # Widened from the pattern (or its value group) unless given: a sound screen by construction.
    screen: str = ""
    screen_pg: str = ""
    group: str | None = field(default=None)
    # A token format (not a value after a key): the span takes in the whole word it sits in.
    whole_word: bool = False
    # Finds the spans itself instead of the pattern (which still gives the screen): for a rule
    # that a single expression states, but too slowly.
    finder: Callable[[str], Iterable[Span]] | None = None
    # How far the screen keeps counted repetitions ({20,} stays {20,} up to this; see widen).
    cap: int = REPEAT_CAP

    def __post_init__(self) -> None:
        cap = self.cap
        if cap == REPEAT_CAP and factor(self.pattern.pattern, group=self.group):
            # A literal anchors the screen: one character of each repeated class is enough, and
            # RE2 runs the joined screen a third faster.
            cap = 1
        if not self.screen:
            screen = widen(self.pattern.pattern, group=self.group, cap=cap)
            object.__setattr__(self, "screen", screen)
        if not self.screen_pg:
            pg = widen(self.pattern.pattern, dialect="pg", group=self.group, cap=cap)
            object.__setattr__(self, "screen_pg", pg)

    def spans(self, text: str) -> Iterator[Span]:
        """The spans of ``text`` that hold this kind of secret.

        A span runs on to the end of its word (a token format's also back to the word's start), so
        that a redaction never leaves a fragment that a second pass would take for a token of its
        own: redaction is idempotent.
        """
        found = self.finder(text) if self.finder else map(_value_span, self.pattern.finditer(text))
        for start, end in found:
            if end <= start:
                continue
            if self.accept is not None and not self.accept(text[start:end]):
                continue
            if self.whole_word:
                while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
                    start -= 1
            tail = _WORD_TAIL.match(text, end)
            yield start, tail.end() if tail else end


def _value_span(match: re.Match[str]) -> Span:
    groups = match.re.groupindex
    if "value" in groups and match.start("value") >= 0:
        start, end = match.span("value")
    elif "keep" in groups and match.start("keep") >= 0:
        start, end = match.end("keep"), match.end()
    else:
        start, end = match.span()
    value = match.string[start:end]
    for quote in _QUOTES:
        size = len(quote)
        if len(value) >= 2 * size and value.startswith(quote) and value.endswith(quote):
            return start + size, end - size
    return start, end


# --- decoded views -----------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\([nrtbf\"\\/'])|%([0-9A-Fa-f]{2})")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
# A text holding one of these reads differently once decoded, in a way that the screens of the
# stored text may not see (an escaped letter, an escaped slash, a URL-encoded character): such
# texts always go through the detectors.
ESCAPE_SCREEN = r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\/"
ESCAPE_SCREEN_PG = r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\/"


@dataclass(frozen=True)
class View:
    """A decoded reading of a text, with the way back to the text's own characters.

    ``marks`` are the view positions where a segment starts; ``origins`` the text position of
    that segment, ``widths`` how many text characters each view character of it stands for
    (1 for copied text; the escape's length for a decoded character).
    """

    text: str
    marks: Sequence[int]
    origins: Sequence[int]
    widths: Sequence[int]

    def start_of(self, position: int) -> int:
        """The text position where view character ``position`` starts."""
        i = bisect.bisect_right(self.marks, position) - 1
        return self.origins[i] + (position - self.marks[i]) * self.widths[i]

    def end_of(self, position: int) -> int:
        """The text position just after view character ``position``."""
        i = bisect.bisect_right(self.marks, position) - 1
        return self.origins[i] + (position - self.marks[i] + 1) * self.widths[i]

    def to_text(self, span: Span) -> Span:
        """``span`` of the view as a span of the text."""
        return self.start_of(span[0]), self.end_of(span[1] - 1)


def decode(text: str) -> View | None:
    """``text`` with its JSON escapes and URL encoding undone, or None when it has none."""
    if "\\" not in text and "%" not in text:
        return None
    out: list[str] = []
    marks: list[int] = []
    origins: list[int] = []
    widths: list[int] = []
    size = 0
    last = 0
    for match in _ESCAPE.finditer(text):
        if match.start() > last:
            marks.append(size)
            origins.append(last)
            widths.append(1)
            out.append(text[last : match.start()])
            size += match.start() - last
        unicode, simple, percent = match.groups()
        if unicode is not None:
            char = chr(int(unicode, 16))
        elif percent is not None:
            char = chr(int(percent, 16))
        else:
            char = _SIMPLE.get(simple, simple)
        marks.append(size)
        origins.append(match.start())
        widths.append(match.end() - match.start())
        out.append(char)
        size += 1
        last = match.end()
    if not marks:
        return None
    if last < len(text):
        marks.append(size)
        origins.append(last)
        widths.append(1)
        out.append(text[last:])
    return View("".join(out), marks, origins, widths)


def views(text: str, depth: int = 2) -> Iterator[tuple[str, Callable[[Span], Span]]]:
    """``text`` itself and its decoded readings, each with the map of its spans back to ``text``."""
    yield text, _identity
    current: str = text
    to_text: Callable[[Span], Span] = _identity
    for _ in range(depth):
        view = decode(current)
        if view is None or view.text == current:
            return
        to_text = _compose(view.to_text, to_text)
        yield view.text, to_text
        current = view.text


def _identity(span: Span) -> Span:
    return span


def _compose(
    inner: Callable[[Span], Span], outer: Callable[[Span], Span]
) -> Callable[[Span], Span]:
    return lambda span: outer(inner(span))


# --- masking -----------------------------------------------------------------------------------


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted spans with overlapping or touching ones joined."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def mask(text: str, spans: Iterable[Span], replacement: str = REDACTED) -> str:
    """``text`` with each of ``spans`` (merged) replaced by ``replacement``."""
    pieces: list[str] = []
    last = 0
    for start, end in merge(spans):
        pieces.append(text[last:start])
        pieces.append(replacement)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


#: Bytes RE2 may use for the detectors' set (its lazily built automaton).
SET_MEMORY = 64 << 20


class Engine:
    """Detectors joined: one RE2 set tells which of them to run on a text."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        # Room for the set's automaton: with RE2's default 8 MB it is flushed again and again on
        # long runs of letters and digits (base64), and reads them 40 times slower.
        options = re2.Options()
        options.max_mem = SET_MEMORY
        self._set = re2.Set.SearchSet(options)
        for detector in self.detectors:
            self._set.Add(detector.screen)
        self._set.Compile()  # raises re2.error if it cannot: a set has no slower fallback
        alternatives = [f"(?:{d.screen})" for d in self.detectors]
        self.screen = "|".join([*alternatives, ESCAPE_SCREEN])
        self.screen_pg = "|".join(
            [f"(?:{d.screen_pg})" for d in self.detectors] + [ESCAPE_SCREEN_PG]
        )

    def spans_in(self, text: str) -> list[Span]:
        """Spans of ``text`` (as given, no decoding) that hold a secret."""
        spans: list[Span] = []
        for index in self._set.Match(text) or ():
            spans.extend(self.detectors[index].spans(text))
        return spans

    def find(self, text: str) -> list[Span]:
        """Spans of ``text`` that hold a secret in any of its readings, merged."""
        spans: list[Span] = []
        for reading, to_text in views(text):
            spans.extend(to_text(span) for span in self.spans_in(reading))
        return merge(spans)

    def redact(self, text: str) -> str:
        """``text`` with every secret any detector finds replaced by ``[REDACTED]``.

        Repeated until nothing changes (rarely more than once): a mask can bring a rule's context
        and its value together, and redacting what is already redacted must change nothing.
        """
        for _ in range(_MAX_PASSES):
            spans = self.find(text)
            redacted = mask(text, spans) if spans else text
            if redacted == text:
                break
            text = redacted
        return text
