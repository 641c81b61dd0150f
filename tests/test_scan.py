"""One RE2 search over a whole chunk of text finds every cell a search of each cell would find."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nano_export.privacy import policy, scan

# Patterns that cannot match a line break and have no anchors: a match cannot reach past its cell,
# so the chunk-wide search and the per-cell search must flag exactly the same cells.
LOCAL = [r"ab", r"a[^\n]b", r"[ab]{2,3}", r"\bab\b", r"\Bb", r"é+a", r"(?:key|ab)=\w+", r"b{3}"]
# Patterns that can: the chunk-wide search may flag more (a match across cells), never fewer.
WIDE = [r"^ab", r"ab$", r"^$", r"a\s+b", r"[^x]{3}", r"b\n?a", r"a*", r"(?i)^A.*B$"]

cells = st.lists(
    st.none() | st.text(alphabet=["a", "b", "x", " ", "\n", "\r", "=", "é", "k", "e", "y"]),
    max_size=12,
)


def per_cell(arr: pa.Array, pattern: str) -> np.ndarray:
    """What the screen was before: RE2 on each cell alone (Arrow's kernel); null is not flagged."""
    return np.asarray(pc.fill_null(pc.match_substring_regex(arr, pattern), False), dtype=bool)


@pytest.mark.parametrize("pattern", LOCAL)
@settings(max_examples=150, deadline=None)
@given(values=cells)
def test_a_local_pattern_flags_exactly_the_cells_it_matches_alone(
    pattern: str, values: list[str | None]
) -> None:
    arr = pa.array(values, pa.string())
    assert scan.matching_cells(arr, pattern).tolist() == per_cell(arr, pattern).tolist()


@pytest.mark.parametrize("pattern", WIDE)
@settings(max_examples=150, deadline=None)
@given(values=cells)
def test_no_cell_a_pattern_matches_alone_is_missed(pattern: str, values: list[str | None]) -> None:
    arr = pa.array(values, pa.string())
    found = scan.matching_cells(arr, pattern)
    alone = per_cell(arr, pattern)
    missed = [v for v, a, f in zip(values, alone, found, strict=True) if a and not f]
    assert not missed
    assert not found[[v is None for v in values]].any()  # a null cell holds nothing to find


def test_anchors_hold_at_each_cell_and_a_match_across_cells_flags_every_cell_it_touches() -> None:
    arr = pa.array(["ab", "xab", "abx", None, "", "a", "b", "a\nb"], pa.string())
    assert scan.matching_cells(arr, "^ab$").tolist() == [True] + [False] * 7
    assert scan.matching_cells(arr, "^ab").tolist() == [True, False, True] + [False] * 5
    # "a" then "b" as cells read "a\nb\n" together: the spurious match flags both, never neither.
    assert scan.matching_cells(arr, r"a\nb").tolist() == [False] * 5 + [True, True, True]


def test_a_match_hidden_behind_a_spurious_one_still_flags_its_cell() -> None:
    # "xa" ends a cell and "b key" starts the next: the search reads "xa\nb key", where a\nb
    # matches first. The cell that holds "key" alone is still flagged (the match touches it).
    arr = pa.array(["xa", "b key", "key"], pa.string())
    assert scan.matching_cells(arr, r"a\nb|key").tolist() == [True, True, True]


def test_an_escaped_backslash_is_not_taken_for_an_edge() -> None:
    assert scan.chunk_wide(r"\\A") and scan.chunk_wide(r"x\\z")  # a backslash, then a letter
    assert not scan.chunk_wide(r"\\\A")  # a backslash, then \A
    arr = pa.array(["a\\A", "A", "\\"], pa.string())
    assert scan.matching_cells(arr, r"\\A").tolist() == [True, False, False]


@pytest.mark.parametrize("pattern", [r"\Aab", r"ab\z", r"(?-m:^ab)", r"(?s-m:^.ab)"])
def test_a_pattern_whose_meaning_depends_on_the_whole_text_is_searched_cell_by_cell(
    pattern: str,
) -> None:
    arr = pa.array(["ab", "xab", "ab\nab", None], pa.string())
    assert not scan.chunk_wide(pattern)
    assert scan.matching_cells(arr, pattern).tolist() == per_cell(arr, pattern).tolist()


def test_the_screen_is_searched_chunk_wide_and_flags_what_it_flagged_cell_by_cell() -> None:
    screen = policy._screen_of("standard")
    assert scan.chunk_wide(screen)
    texts = [
        "export OPENAI_API_KEY=sk-proj-" + "a1B2" * 10,
        "plain answer, nothing here",
        "mail me at ana@example.org",
        None,
        "C:\\Users\\ana\\notes.txt",
        "",
        '{"password": "hunter2-long-enough"}',
        "an ordinary sentence\nover two lines",
    ]
    arr = pa.array(texts * 3, pa.string())
    assert scan.matching_cells(arr, screen).tolist() == per_cell(arr, screen).tolist()


def test_an_empty_or_all_null_array_flags_nothing() -> None:
    assert scan.matching_cells(pa.array([], pa.string()), "a").tolist() == []
    assert scan.matching_cells(pa.array([None, None], pa.string()), "a|").tolist() == [False] * 2
    assert scan.matching_cells(pa.array(["x"], pa.large_string()), "x").tolist() == [True]


def test_a_sliced_array_is_read_from_its_own_cells() -> None:
    arr = pa.array(["key", "no", "no", "key", "no"], pa.string()).slice(1, 3)
    assert scan.matching_cells(arr, "key").tolist() == [False, False, True]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_cells_searched_a_slice_at_a_time_give_the_same_answer(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = ["ab", None, "x ab", "", "b", "a", "key=1", "ba", None, "ab\nab", "é ab"] * 2
    arr = pa.array(values, pa.string())
    monkeypatch.setattr(scan, "SLICE_CELLS", size)
    for pattern in LOCAL:
        assert scan.matching_cells(arr, pattern).tolist() == per_cell(arr, pattern).tolist()
    assert not scan.matching_cells(arr, "a*")[[v is None for v in values]].any()
