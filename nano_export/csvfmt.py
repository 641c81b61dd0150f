"""CSV files as the spec defines them, written fast and never left half-written at the final path.

Format (SPEC "CSV"): UTF-8, comma, RFC 4180 quoting (only fields holding a comma, quote, CR or LF
are quoted; quotes are doubled), one header row, CRLF (``\\r\\n``) after every row as RFC 4180
says. Timestamps are UTC in one fixed format, ``2025-08-10T14:03:07.123456Z`` (always six
fractional digits, whatever the chunk holds); booleans ``true``/``false``; null is an empty field;
numbers in plain notation (``0.00001``, never ``1e-05``; whole numbers without ``.0``, also in
float columns); text cells starting with ``= + - @``, tab or CR get a leading ``'``.

Cells are formatted per column with Arrow compute kernels and each chunk is assembled into one
buffer of CSV bytes (see ``bench/csv_bench.py`` for the figures behind this choice); one writer
thread compresses, hashes (sha256 while writing, never re-reading) and writes a chunk while the
next is formatted. The file goes to a temporary name ``.<final name>.<random>.part`` in the same
folder and is renamed on :meth:`CsvSink.commit`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip as gzip_module
import io
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nano_export.csvcells import (
    FORMULA_CHARS,
    bytes_of,
    format_cells,
    format_frame,
    guard_formula,
)
from nano_export.sinkfile import TEMP_SUFFIX, Digest, FileSink, SinkResult
from nano_export.typedcells import EMPTY, Chunk, arrow_bools, arrow_text, chunk_slice, combined

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind

__all__ = [
    "BOM",
    "FORMULA_CHARS",
    "LINE_END",
    "TEMP_SUFFIX",
    "CsvSink",
    "SinkResult",
    "encode_rows",
    "format_frame",
    "guard_formula",
    "header_line",
]

logger = logging.getLogger(__name__)

#: Row terminator of every file (RFC 4180).
LINE_END = "\r\n"
#: zlib level for ``.csv.gz``: level 1 is several times faster than 6 for a few % more bytes.
GZIP_LEVEL = 1
#: The UTF-8 byte order mark written first with ``excel=True``.
BOM = "\ufeff".encode()

_COMMA = arrow_text(",")
_EOL = arrow_text(LINE_END)
_QUOTE = arrow_text('"')
_EMPTY_QUOTES = arrow_text('""')
_COMMA_BYTE, _QUOTE_BYTE, _CR_BYTE, _LF_BYTE = b',"\r\n'
#: Rows formatted and encoded at a time: a chunk's CSV text is built (and waits for the writer)
#: a slice at a time, not all at once, so its copies stay small beside the chunk itself.
SLICE_ROWS = 5_000


# --- CSV assembly ----------------------------------------------------------------------------


def _quoted(arr: pa.Array) -> pa.Array:
    """RFC 4180: fields holding a comma, quote, CR or LF in quotes, with quotes doubled."""
    data, offsets = bytes_of(arr)
    text = data[offsets[0] : offsets[-1]]
    # Four byte comparisons over the column's text, then the cell of each hit: cheaper than a
    # regular expression per cell, whose fixed cost dominates (2.8M cells per 200K rows).
    quote = text == _QUOTE_BYTE
    special = text == _COMMA_BYTE
    special |= quote
    special |= text == _CR_BYTE
    special |= text == _LF_BYTE
    hits = np.flatnonzero(special)
    if not hits.size:
        return arr
    needs = np.zeros(len(arr), dtype=bool)
    # A byte at position p belongs to the first cell that ends after p (empty cells end nowhere).
    needs[np.searchsorted(offsets[1:] - offsets[0], hits, side="right")] = True
    # Only cells that need quotes hold '"', so doubling quotes everywhere is safe; a per-row
    # quote-or-nothing affix is much cheaper than choosing between two long strings.
    affix = pc.if_else(arrow_bools(needs), _QUOTE, EMPTY)
    body = pc.replace_substring(arr, '"', '""') if quote.any() else arr
    return pc.binary_join_element_wise(affix, body, affix, EMPTY)


def encode_rows(cells: Sequence[pa.Array], *, text: Sequence[bool] | None = None) -> memoryview:
    """The CSV bytes of formatted columns (one row per element), each row ending in CRLF.

    ``text[i]`` false promises that column ``i`` never needs quotes (numbers, booleans, times).
    """
    fields = [
        _quoted(c) if (text is None or text[i]) and c.null_count < len(c) else c
        for i, c in enumerate(cells)
    ]
    last = pc.fill_null(fields[-1], EMPTY)
    if len(fields) == 1:  # a lone empty field would be an empty line: write it as ""
        last = pc.if_else(pc.equal(last, EMPTY), _EMPTY_QUOTES, last)
    fields[-1] = pc.binary_join_element_wise(last, _EOL, EMPTY)
    lines = combined(
        pc.binary_join_element_wise(*fields, _COMMA, null_handling="replace", null_replacement="")
    )
    if len(lines) == 0:
        return memoryview(b"")
    # The data buffer of a string array holds its values back to back: that is the chunk's text.
    _validity, offsets_buf, data = lines.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(data)[start:end]


def header_line(columns: Sequence[str]) -> bytes:
    """The header row: column names, formula-guarded and quoted like any text cell."""
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_END).writerow([guard_formula(c) for c in columns])
    return out.getvalue().encode()


# --- the sink --------------------------------------------------------------------------------


class CsvSink(FileSink):
    """One CSV file written chunk by chunk to a temporary name and renamed on :meth:`commit`.

    Use as a context manager: leaving the block by an exception (or without commit) removes the
    temporary file; a final path never holds a partial file. The temporary file, commit, abort and
    the context manager are :class:`~nano_export.sinkfile.FileSink`'s, as for every format.
    """

    kind = "CSV"

    def __init__(
        self,
        path: Path,
        *,
        columns: Sequence[str],
        kinds: Mapping[str, Kind],
        gzip: bool = False,
        excel: bool = False,
    ) -> None:
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        super().__init__(path, columns=list(columns))
        self.kinds = dict(kinds)
        self.gzip = gzip
        self._text = [self.kinds[c] == "text" for c in self.columns]
        self._raw = self.temp_path.open("wb")
        self._digest = Digest(self._raw)
        self._out: Digest | gzip_module.GzipFile = self._digest
        # One writer thread compresses, hashes and writes chunk N while chunk N+1 is formatted
        # (zlib, hashlib and file writes release the GIL); at most one chunk waits in memory.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-writer")
        self._pending: Future[int] | None = None
        if gzip:
            name = self.path.name.removesuffix(".gz")
            self._out = gzip_module.GzipFile(
                filename=name, mode="wb", fileobj=self._digest, compresslevel=GZIP_LEVEL, mtime=0
            )
        try:
            self._out.write((BOM if excel else b"") + header_line(self.columns))
        except BaseException:
            self.abort()
            raise

    def _wait(self) -> None:
        """Wait for the chunk in flight; its write error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def write(self, df: Chunk) -> None:
        """Format and append one chunk whose columns are exactly ``columns``, in order."""
        self._check(df)
        for start in range(0, len(df), SLICE_ROWS):
            part = chunk_slice(df, start, SLICE_ROWS)
            data = encode_rows(format_cells(part, self.kinds), text=self._text)
            self._wait()
            self._pending = self._writer.submit(self._out.write, data)
        self._rows += len(df)

    def _finish(self) -> tuple[int, str]:
        """Write the last chunk and the gzip trailer; the size and sha256 hashed on the way."""
        self._wait()
        self._writer.shutdown()
        if isinstance(self._out, gzip_module.GzipFile):
            self._out.close()  # writes the gzip trailer through the digest
        self._raw.close()
        return self._digest.size, self._digest.sha.hexdigest()

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # a failed write is why we are aborting
            self._wait()
        self._writer.shutdown()
        try:
            if isinstance(self._out, gzip_module.GzipFile):
                self._out.close()  # so it does not try to flush into a closed file later
        except (OSError, ValueError):
            pass
        finally:
            self._raw.close()
