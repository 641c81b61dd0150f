"""The privacy policy: one redaction path for the dashboard preview and every export file.

Credentials are redacted at every level; ``standard`` also masks emails and home-directory user
names and hashes ``session_id``; ``public`` leaves free text out and hashes every identity.

Speed: an export passes a million rows through :func:`apply_policy`. Each free-text column is
first screened with one RE2 pattern, searched a thousand cells at a time as one text
(:mod:`~nano_export.privacy.scan`, no Python per cell); only the few cells the screen flags run
the Python substitution. The screen is deliberately looser than the substitution patterns (every
text the substitution would change is flagged), so it never lets a secret through;
``tests/test_privacy.py`` checks that property.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Boolean
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from nano_export.datasets import FREE_TEXT, IDENTITY
from nano_export.errors import BadInput, InvalidSetting, PermissionDenied
from nano_export.models import ALLOWED_LEVELS, PRIVACY_LEVELS, Privacy, Role
from nano_export.privacy import context, ruleset, scan
from nano_export.privacy.engine import Engine
from nano_export.privacy.widen import Dialect, widen
from nano_export.typedcells import (
    FALSE,
    Chunk,
    Column,
    arrow_bools,
    arrow_ints,
    arrow_number,
    arrow_texts,
    chunk_column,
    chunk_names,
    is_arrow,
    numpy_bools,
)

if TYPE_CHECKING:  # frames come from read_sql; an export read natively never loads pandas
    import pandas as pd

logger = logging.getLogger(__name__)

EMAIL = "[EMAIL]"
USER = "[USER]"
HASH_LENGTH = 16

# --- credentials -------------------------------------------------------------------------------


@functools.cache
def engine() -> Engine:
    """The credential detectors: the maintained ruleset's known formats, then the context rules."""
    return Engine((*ruleset.load(), *context.DETECTORS))


def redact_credentials(text: str) -> str:
    """Replace every credential in ``text`` (API keys, tokens, passwords, private keys) by
    ``[REDACTED]``, keeping the surrounding text (and the key name, URL user and host), in
    whatever form the text holds it: plain, JSON-escaped or URL-encoded."""
    return engine().redact(text)


def credential_screen(dialect: Dialect = "re2") -> str:
    """The pre-screen: matches every text :func:`redact_credentials` could change."""
    return engine().screen if dialect == "re2" else engine().screen_pg


# --- personal data -----------------------------------------------------------------------------

_USER_NAME = r"[^\s/\\'\"<>:;,\[\]]+"
_EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# Home folders of every common system: Linux /home/NAME (also /var/home on Fedora's atomic
# desktops, /export/home and /usr/home), macOS /Users/NAME, WSL's /mnt/c/Users/NAME, and Windows
# C:\Users\NAME (also C:\\Users\\NAME as JSON holds it, and C:/Users/NAME).
_HOME_PATTERN = (
    r"(?P<keep>(?<![\w.\]-])(?:/(?:var|export|usr))?/home/|(?<![\w.\]-])(?:/mnt/[A-Za-z])?/Users/"
    r"|\b[A-Za-z]:(?:\\{1,2}|/)(?i:users)(?:\\{1,2}|/))" + _USER_NAME
)
_EMAIL = re.compile(_EMAIL_PATTERN, re.ASCII)
_HOME = re.compile(_HOME_PATTERN, re.ASCII)


@functools.cache
def personal_screen(dialect: Dialect = "re2") -> str:
    """The pre-screen: matches every text :func:`mask_personal` could change."""
    return f"{widen(_EMAIL_PATTERN, dialect=dialect)}|{widen(_HOME_PATTERN, dialect=dialect)}"


def _home_replacement(match: re.Match[str]) -> str:
    return match.group("keep") + USER


def mask_personal(text: str) -> str:
    """Mask emails as ``[EMAIL]`` and home-directory user names in paths as ``[USER]``."""
    if "@" in text:
        text = _EMAIL.sub(EMAIL, text)
    if "/home/" in text or "/Users/" in text or "\\" in text or ":/" in text:
        text = _HOME.sub(_home_replacement, text)
    return text


def _redact_standard(text: str) -> str:
    return mask_personal(redact_credentials(text))


# --- identities --------------------------------------------------------------------------------


#: HMAC's pads (RFC 2104): each byte of the key XOR 0x36 (inner) and 0x5C (outer).
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))


def _identity_hashes(values: Iterable[str], secret: str) -> list[str]:
    """:func:`stable_hash` of each of ``values``.

    Two SHA-256 states read HMAC's inner and outer keys once (RFC 2104, checked against
    ``hmac.new`` by the tests); each value copies them. ``hmac.HMAC.copy`` and its ``update`` and
    ``hexdigest`` each pass through Python code: this is the same computation in about half the
    time, which counts when a chunk holds thousands of session ids.
    """
    if not secret:
        raise InvalidSetting("SECRET_KEY is empty: identifiers cannot be hashed without a secret")
    key = secret.encode("utf-8")
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(key.translate(_INNER_PAD))
    outer = hashlib.sha256(key.translate(_OUTER_PAD))
    hashes: list[str] = []
    for value in values:
        head = inner.copy()
        head.update(value.encode("utf-8"))
        mac = outer.copy()
        mac.update(head.digest())
        hashes.append(mac.hexdigest()[:HASH_LENGTH])
    return hashes


def stable_hash(value: str, secret: str) -> str:
    """HMAC-SHA256 of ``value`` keyed by ``secret``: 16 hex characters, the same in every
    process, and not recoverable by guessing values without the secret."""
    return _identity_hashes([value], secret)[0]


def _hash_array(column: Column, secret: str) -> pa.Array:
    """Each distinct non-null value hashed once (``stable_hash``); nulls stay null."""
    # Distinct values and each row's index into them, found by Arrow outside the GIL.
    encoded = pc.dictionary_encode(_text_array(column))
    hashed = _identity_hashes(encoded.dictionary.to_pylist(), secret)
    # Gather in Arrow: no Python string per row. A null index (a null value) gives null.
    return arrow_texts(hashed).take(encoded.indices)


# --- free text ---------------------------------------------------------------------------------


# --- free text in filters ----------------------------------------------------------------------


class MayBeMasked(ColumnElement[bool]):
    """SQL: the text may hold something a privacy level masks (a credential, an email, a
    home-directory name), by the pre-screen above. True for every such text, false for text that
    every level shows unchanged; NULL for NULL.

    A ``where`` on free text is evaluated on the stored text, so it is guarded with this: a
    condition on text that a mask covers would let row counts spell out the masked value.
    """

    inherit_cache = False
    type = Boolean()

    def __init__(self, text: ColumnElement[Any]) -> None:
        self.text = text


@compiles(MayBeMasked)
def _may_be_masked_re2(element: MayBeMasked, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite (and any engine whose regexp is RE2, like nano-export's SQLite connections).
    screen = f"{credential_screen()}|{personal_screen()}"
    return f"({compiler.process(element.text.regexp_match(screen), **kw)})"


@compiles(MayBeMasked, "postgresql")
def _may_be_masked_pg(element: MayBeMasked, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL's regular expressions: the same screen written in their dialect (no inline
    # flags: case-insensitive letters are character classes).
    screen = f"{credential_screen('pg')}|{personal_screen('pg')}"
    return f"({compiler.process(element.text.regexp_match(screen), **kw)})"


def _text_array(series: Column) -> pa.Array:
    if is_arrow(series):
        arr = series
    else:
        if not _is_arrow_text(series):
            series = series.astype("str")  # object or other columns: text from here on
        arr = pa.array(series)
    if isinstance(arr, pa.ChunkedArray):  # a frame built by pd.concat
        arr = arr.combine_chunks()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


#: Cells with a run this long of letters, digits and base64's signs (base64 data, long tokens)
#: skip the joined screen: its automaton outgrows RE2's memory on such runs and reads them at
#: 0.5 MB/s instead of 160. They go straight to the rules, whose RE2 set has room for them. Sound:
#: a cell the screen would pass is one the rules leave as it is.
BLOB_RUN = 256
_BLOB = f"[A-Za-z0-9+/=_-]{{{BLOB_RUN}}}"
_BLOB_RUN = arrow_number(BLOB_RUN)


def _blob_cells(arr: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
    """Which cells of ``arr`` hold a run of ``BLOB_RUN`` base64 characters; None if none do."""
    long = pc.fill_null(pc.greater_equal(pc.binary_length(arr), _BLOB_RUN), FALSE)
    if not pc.any(long).as_py():
        return None
    where = np.flatnonzero(numpy_bools(long))
    runs = pc.fill_null(pc.match_substring_regex(arr.take(arrow_ints(where)), _BLOB), FALSE)
    found = numpy_bools(runs)
    if not found.any():
        return None
    blobs = np.zeros(len(arr), dtype=bool)
    blobs[where[found]] = True
    return blobs


#: A column is screened by its distinct values when a sample of its cells shows at most this
#: share of distinct values (a test's prompt, sent to every model, in every run). Hashing a
#: cell costs about a tenth of screening it, and a small sample shows more distinct values than
#: its chunk holds (demo answers: 60-65% in the first 1,000 cells, 15% in the chunk).
REPEATS = 0.9
#: The cells of that sample: the first of each chunk.
SAMPLE_CELLS = 1_000


def _repeats(arr: pa.Array) -> bool:
    """Whether the values of ``arr`` repeat enough that screening each once is cheaper."""
    sample = arr.slice(0, SAMPLE_CELLS)
    distinct = pc.count_distinct(sample, mode="all").as_py()
    return len(sample) > 0 and distinct <= REPEATS * len(sample)


def _screen(arrays: Sequence[pa.Array], screen: str) -> pa.Array:
    """Which cells of the text ``arrays`` (one after the other) may be changed by the rules:
    ``screen``'s matches, and blobs.

    One search for all the columns (the automaton warms up once per chunk). A column whose values
    repeat is searched by its distinct values, each once: finding them (a hash of each cell, in
    Arrow) costs a fraction of reading each cell with the screen (300K rows' prompts, 43 MB, hold
    3 MB of distinct text per chunk). A column whose values do not repeat is searched as it is.
    """
    parts: list[pa.Array] = []
    lookups: list[pa.Array | None] = []  # each distinct value's index, for each cell
    for arr in arrays:
        if _repeats(arr):
            encoded = pc.dictionary_encode(arr)
            parts.append(encoded.dictionary)
            lookups.append(encoded.indices)
        else:
            parts.append(arr)
            lookups.append(None)
    flags = _screen_values(pa.concat_arrays(parts), screen)
    out: list[pa.Array] = []
    offset = 0
    for part, lookup in zip(parts, lookups, strict=True):
        piece = flags.slice(offset, len(part))
        offset += len(part)
        out.append(piece if lookup is None else piece.take(lookup))
    return pc.fill_null(pa.concat_arrays(out), FALSE)  # a null cell is never flagged


def _screen_values(arr: pa.Array, screen: str) -> pa.Array:
    """:func:`_screen` of the values of ``arr``, one by one."""
    blobs = _blob_cells(arr)
    if blobs is None:
        return arrow_bools(scan.matching_cells(arr, screen))
    rest = ~blobs
    blobs[rest] = scan.matching_cells(arr.filter(arrow_bools(rest)), screen)
    return arrow_bools(blobs)  # blobs, and what the screen flags among the rest


def _screen_of(level: Privacy) -> str:
    """The screen of the rules that run at ``level`` (standard also masks personal data)."""
    if level == "standard":
        return f"{credential_screen()}|{personal_screen()}"
    return credential_screen()


def screen_flags(df: Chunk, *, level: Privacy) -> pa.Array | None:
    """Which cells of ``df``'s free-text columns (in column order, one after the other) the rules
    must read at ``level``; None when the level writes no free text or a column is not Arrow text.

    Arrow and RE2, outside the GIL but for a little Python per match: an export screens a chunk
    in its reader thread while the chunk before is redacted and written.
    ``apply_policy(..., flags=...)`` takes the answer.
    """
    names = [name for name in chunk_names(df) if name in FREE_TEXT]
    if level == "public" or not names:
        return None
    columns = [chunk_column(df, name) for name in names]
    if not all(_is_arrow_text(column) for column in columns):
        return None  # converting object columns takes the GIL: the redaction does it once
    return _screen([_text_array(column) for column in columns], _screen_of(level))


def _is_arrow_text(series: Column) -> bool:
    if is_arrow(series):
        return bool(pa.types.is_string(series.type) or pa.types.is_large_string(series.type))
    import pandas as pd  # a Series: read_sql has loaded pandas

    dtype = series.dtype
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


#: What one export's :class:`Redactions` holds at most, in characters: its texts, their
#: redactions and ``ENTRY_CHARS`` per entry. A chunk's flagged texts are about 50K characters.
MEMO_CHARS = 2_000_000
#: What an entry costs beyond its two texts (the key, the dict's slot, two string headers), in
#: characters: many short texts cannot make the memo larger than long ones (at most 20,000).
ENTRY_CHARS = 100


class Redactions:
    """The redactions of one export, kept from chunk to chunk: a prompt sent to every model comes
    back in many chunks and is redacted once. Bounded by ``limit`` characters (see
    ``MEMO_CHARS``; a few MB, at most 8 MB of text if every character took four bytes): the texts
    used least recently go first, and a text larger than the memo is redacted each time and never
    kept. One export's own: it is not shared between threads."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MEMO_CHARS if limit is None else limit
        self.chars = 0
        self._done: dict[tuple[Callable[[str], str], str], str] = {}

    def of(self, text: str, redact: Callable[[str], str]) -> str:
        """``redact(text)``, from the memo when this text was redacted the same way before."""
        key = (redact, text)
        done = self._done.pop(key, None)
        if done is None:
            done = redact(text)
            size = _entry_chars(text, done)
            if size > self.limit:
                return done
            self.chars += size
        self._done[key] = done  # the most recently used last
        while self.chars > self.limit:
            oldest = next(iter(self._done))
            self.chars -= _entry_chars(oldest[1], self._done.pop(oldest))
        return done


def _entry_chars(text: str, done: str) -> int:
    return len(text) + len(done) + ENTRY_CHARS


def _redacted(
    arrays: list[pa.Array],
    screen: str,
    redact: Callable[[str], str],
    flags: pa.Array | None = None,
    memo: Redactions | None = None,
) -> list[pa.Array | None]:
    """Apply ``redact`` to the cells of the text ``arrays`` that ``screen`` flags (or that
    ``flags`` gives, screened earlier): each array redacted, or None when no cell was flagged.

    The columns are screened as one array: RE2 compiles the screen (a hundred rules joined) once
    per chunk instead of once per column, and builds its automaton once.
    """
    cells = sum(len(arr) for arr in arrays)
    if flags is not None and len(flags) != cells:
        raise ValueError(f"flags for {len(flags)} cells given for {cells} free-text cells")
    flagged_all = _screen(arrays, screen) if flags is None else flags
    memo = Redactions() if memo is None else memo  # a value repeated in the chunk: redacted once
    out: list[pa.Array | None] = []
    offset = 0
    for arr in arrays:
        flagged = flagged_all.slice(offset, len(arr))
        offset += len(arr)
        count = pc.sum(flagged).as_py() or 0
        if count == 0:
            out.append(None)
            continue
        texts = [memo.of(text, redact) for text in arr.filter(flagged).to_pylist()]
        replacements = arrow_texts(texts, arr.type)
        out.append(pc.replace_with_mask(arr, flagged, replacements))
        logger.debug("redacted text column", extra={"rows": len(arr), "screened_in": count})
    return out


def _safe_columns(
    chunk: Chunk, level: Privacy, secret: str, flags: pa.Array | None, memo: Redactions | None
) -> tuple[list[str], dict[str, pa.Array], set[str]]:
    """The policy on the columns of a chunk, whatever holds them: the names ``level`` keeps, the
    new values of the identity and free-text columns among them (hashed; as text, redacted), and
    the free-text columns that the redaction left as they were."""
    names = columns_for_level(chunk_names(chunk), level)
    new: dict[str, pa.Array] = {}
    if level in ("public", "standard"):
        # Identities are hashed like the names in the text are masked: they still group.
        for name in names:
            if name in IDENTITY:
                new[name] = _hash_array(chunk_column(chunk, name), secret)
    free_text = [name for name in names if name in FREE_TEXT]
    untouched: set[str] = set()
    if free_text:
        redact = _redact_standard if level == "standard" else redact_credentials
        arrays = [_text_array(chunk_column(chunk, name)) for name in free_text]
        results = _redacted(arrays, _screen_of(level), redact, flags, memo)
        for name, arr, result in zip(free_text, arrays, results, strict=True):
            new[name] = arr if result is None else result
            if result is None:
                untouched.add(name)
    return names, new, untouched


@overload
def apply_policy(
    df: pd.DataFrame,
    *,
    level: Privacy,
    secret: str,
    flags: pa.Array | None = None,
    memo: Redactions | None = None,
) -> pd.DataFrame: ...


@overload
def apply_policy(
    df: pa.Table,
    *,
    level: Privacy,
    secret: str,
    flags: pa.Array | None = None,
    memo: Redactions | None = None,
) -> pa.Table: ...


def apply_policy(
    df: Chunk,
    *,
    level: Privacy,
    secret: str,
    flags: pa.Array | None = None,
    memo: Redactions | None = None,
) -> Chunk:
    """Return ``df`` (a DataFrame or an Arrow table) as the privacy ``level`` allows it to be
    shown or written.

    Acts on the free-text and identity columns present; ``df`` itself is left unchanged.
    ``flags``: :func:`screen_flags` of ``df`` at ``level``, when it was screened ahead. ``memo``:
    the export's :class:`Redactions`, kept from chunk to chunk (by default, one for this chunk).
    """
    if level not in PRIVACY_LEVELS:
        raise BadInput(
            f"unknown privacy level {level!r}; expected one of {', '.join(PRIVACY_LEVELS)}"
        )
    names, new, untouched = _safe_columns(df, level, secret, flags, memo)
    if isinstance(df, pa.Table):
        return pa.Table.from_arrays(
            [new[name] if name in new else df.column(name) for name in names], names=names
        )
    import pandas as pd  # a DataFrame: read_sql has loaded pandas

    out = df.copy(deep=False)
    if level == "public":
        out = out.drop(columns=[name for name in out.columns if name in FREE_TEXT])
    for name, values in new.items():
        if name in untouched and out[name].dtype == "str":
            continue  # already text, and nothing in it changed
        out[name] = pd.Series(values, index=out.index, name=name, dtype="str")
    return out


# --- roles -------------------------------------------------------------------------------------


def check_level(role: Role, level: Privacy) -> None:
    """Raise ``PermissionDenied`` unless ``role`` may export privacy ``level``."""
    allowed = ALLOWED_LEVELS.get(role, ())
    if level in allowed:
        return
    if not allowed:
        raise PermissionDenied(
            f"role {role!r} may not export; privacy level {level!r} was requested"
        )
    names = " and ".join(repr(name) for name in allowed)
    noun = "level" if len(allowed) == 1 else "levels"
    raise PermissionDenied(
        f"role {role!r} may export privacy {noun} {names} only; {level!r} was requested"
    )


def columns_for_level(names: Sequence[str], level: Privacy) -> list[str]:
    """The column names that an export at ``level`` contains (no free text at ``public``)."""
    if level == "public":
        return [name for name in names if name not in FREE_TEXT]
    return list(names)
