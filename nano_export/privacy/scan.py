"""Which cells of a text column an RE2 expression matches, searched a thousand cells at a time.

The privacy screen is one RE2 expression of a hundred rules. Arrow's ``match_substring_regex``
searched it cell by cell at about 65 MB/s of text (its bundled RE2, with RE2's default memory
for the automaton, which this expression outgrows). Here a thousand cells at a time are searched
as one text, each followed by a line break, by the ``google-re2`` module with room for the
automaton: a third of the time. RE2 runs outside the GIL, as in Arrow's kernel; Python handles
each match (a few per thousand cells of agent text). Each match flags every cell it touches.

Why no cell is missed:
- **Every match of a cell alone is a match in the joined text.** RE2 has no look-around; what a
  match sees beyond its own characters is only ``^ $ \\b \\B``. The line break after each cell is
  not a word character, as the start and the end of a text count for ``\\b``; and ``^``/``$``
  are read in multi-line mode, where they hold after and before each line break, so at each
  cell's edges too. An expression that asks for the text's own edges (``\\A``, ``\\z``) or that
  turns a flag off is searched cell by cell instead (:func:`chunk_wide` says which).
- **A left-to-right search cannot step over such a match.** The search resumes where its last
  match ended. From any point before a cell's own match, the next match starts at or before it:
  either that match reaches into the cell, or it ends before the cell's match, and the search
  resumes from there. So some match touches the cell.

A match that runs across cells (a line break is text too) flags a cell the cell-by-cell search
would not: looser, never laxer, as a screen may be. The rules that run on the flagged cells decide.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import re2

from nano_export.typedcells import EMPTY, FALSE, arrow_text, numpy_bools

#: RE2's memory for one expression's automaton; it grows to this only as needed. The screen of
#: every rule, on 200K demo rows: 2.4 s with RE2's default of 8 MB (the automaton is rebuilt over
#: and over), 0.29 s with 16 MB, 0.22 s with 32 MB. A 1M-row export peaks the same with either,
#: about 10 MB above Arrow's kernel, whose automaton is built anew for each chunk.
MAX_MEM = 32 << 20

#: Cells searched at once: the joined copy of their text stays small (about 1.5 MB of answers).
SLICE_CELLS = 1_000

_BREAK = arrow_text("\n")
# Escapes that mean the edges of the whole text, and flag groups that turn a flag off.
_TEXT_EDGES = re.compile(r"\\[\\Az]|\(\?[a-zA-Z]*-")


def chunk_wide(pattern: str) -> bool:
    """Whether ``pattern`` can be searched over many cells at once (see the module's docstring)."""
    return not any(m.group() != "\\\\" for m in _TEXT_EDGES.finditer(pattern))


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> Any:
    """``pattern`` compiled for a search over many cells; None when it is not chunk-wide."""
    if not chunk_wide(pattern):
        return None
    options = re2.Options()
    options.never_capture = True
    options.max_mem = MAX_MEM
    return re2.compile(f"(?m:{pattern})".encode(), options)


def matching_cells(arr: pa.Array, pattern: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """For each cell of the text array ``arr``, whether ``pattern`` may match it: every cell it
    matches, perhaps a few more (see the module's docstring); never a null cell."""
    expression = _compiled(pattern)
    if expression is None:
        return numpy_bools(pc.fill_null(pc.match_substring_regex(arr, pattern), FALSE))
    found = np.zeros(len(arr), dtype=bool)
    for start in range(0, len(arr), SLICE_CELLS):
        part = arr.slice(start, SLICE_CELLS)
        found[start : start + len(part)] = _search(part, expression)
    return found


def _search(arr: pa.Array, expression: Any) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """:func:`matching_cells` of ``arr`` with the compiled ``expression``, in one search."""
    lines = pc.binary_join_element_wise(arr.cast(pa.large_string()), _BREAK, EMPTY)
    assert lines.offset == 0  # a new array: its offsets start at its first cell
    _validity, offsets_buf, data = lines.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[: len(lines) + 1]
    found = np.zeros(len(arr), dtype=bool)
    if data is None or offsets[-1] == 0:
        return found
    spans = [m.span() for m in expression.finditer(memoryview(data)[: offsets[-1]])]
    if not spans:
        return found
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    # An empty match touches the character it stands before.
    ends = np.array([max(e, s + 1) for s, e in spans], dtype=np.int64)
    # A null cell has no characters: a position belongs to the last cell starting at or before it.
    # An empty match at the very end (after the last line break) is given to the last cell.
    first = np.minimum(np.searchsorted(offsets, starts, side="right") - 1, len(arr) - 1)
    last = np.minimum(np.searchsorted(offsets, ends - 1, side="right") - 1, len(arr) - 1)
    touched = np.zeros(len(arr) + 1, dtype=np.int64)
    np.add.at(touched, first, 1)
    np.add.at(touched, last + 1, -1)
    found[:] = np.cumsum(touched[:-1]) > 0
    found &= numpy_bools(pc.is_valid(arr))
    return found
