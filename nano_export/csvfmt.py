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
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nano_export.csvcells import (
    EMPTY,
    FORMULA_CHARS,
    bytes_of,
    format_cells,
    format_frame,
    guard_formula,
)
from nano_export.sinkfile import TEMP_SUFFIX, Digest, SinkResult, fsync_dir
from nano_export.typedcells import TEXT, combined

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

_COMMA = pa.scalar(",", TEXT)
_EOL = pa.scalar(LINE_END, TEXT)
_QUOTE = pa.scalar('"', TEXT)
_NEEDS_QUOTES = '[,"\r\n]'
_SPECIAL_BYTES = np.zeros(256, dtype=bool)
_SPECIAL_BYTES[list(b',"\r\n')] = True
_SCAN_BYTES_PER_ROW = 64


# --- CSV assembly ----------------------------------------------------------------------------


def _quoted(arr: pa.Array) -> pa.Array:
    """RFC 4180: fields holding a comma, quote, CR or LF in quotes, with quotes doubled."""
    data, offsets = bytes_of(arr)
    # A byte scan is cheaper than the regex for short cells; long ones nearly always need quotes.
    if (
        offsets[-1] - offsets[0] <= _SCAN_BYTES_PER_ROW * len(arr)
        and not _SPECIAL_BYTES[data[offsets[0] : offsets[-1]]].any()
    ):
        return arr
    needs = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_QUOTES), False)
    if not pc.any(needs).as_py():
        return arr
    # Only cells that need quotes hold '"', so doubling quotes everywhere is safe; a per-row
    # quote-or-nothing affix is much cheaper than choosing between two long strings.
    affix = pc.if_else(needs, _QUOTE, EMPTY)
    return pc.binary_join_element_wise(affix, pc.replace_substring(arr, '"', '""'), affix, EMPTY)


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
        last = pc.if_else(pc.equal(last, EMPTY), pa.scalar('""', TEXT), last)
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


class CsvSink:
    """One CSV file written chunk by chunk to a temporary name and renamed on :meth:`commit`.

    Use as a context manager: leaving the block by an exception (or without commit) removes the
    temporary file; a final path never holds a partial file.
    """

    def __init__(
        self,
        path: Path,
        *,
        columns: Sequence[str],
        kinds: Mapping[str, Kind],
        gzip: bool = False,
        excel: bool = False,
    ) -> None:
        if not columns:
            raise ValueError("a CSV file needs at least one column")
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        self.path = Path(path)
        self.columns = list(columns)
        self.kinds = dict(kinds)
        self.gzip = gzip
        self._text = [self.kinds[c] == "text" for c in self.columns]
        self._rows = 0
        self._done = False
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX
        )
        self.temp_path = Path(temp)
        self._raw = os.fdopen(fd, "wb")
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
        logger.debug("writing %s via %s", self.path, self.temp_path)
        try:
            self._out.write((BOM if excel else b"") + header_line(self.columns))
        except BaseException:
            self.abort()
            raise

    @property
    def rows(self) -> int:
        """Data rows written so far (the last chunk may still be on its way to the file)."""
        return self._rows

    def _wait(self) -> None:
        """Wait for the chunk in flight; its write error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def write(self, df: pd.DataFrame) -> None:
        """Format and append one chunk whose columns are exactly ``columns``, in order."""
        if self._done:
            raise RuntimeError(f"CSV sink for {self.path} is already closed")
        if list(df.columns) != self.columns:
            raise ValueError(
                f"chunk columns {list(df.columns)} differ from the file's {self.columns}"
            )
        if len(df) == 0:
            return
        data = encode_rows(format_cells(df, self.kinds), text=self._text)
        self._wait()
        self._pending = self._writer.submit(self._out.write, data)
        self._rows += len(df)

    def commit(self) -> SinkResult:
        """Flush, fsync and rename the temporary file to the final path; return what was written."""
        if self._done:
            raise RuntimeError(f"CSV sink for {self.path} is already closed")
        try:
            self._wait()
            self._writer.shutdown()
            if isinstance(self._out, gzip_module.GzipFile):
                self._out.close()  # writes the gzip trailer through the digest
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        fsync_dir(self.path.parent)
        result = SinkResult(self.path, self._rows, self._digest.size, self._digest.sha.hexdigest())
        logger.info("wrote %s: %d rows, %d bytes", self.path, result.rows, result.bytes)
        return result

    def abort(self) -> None:
        """Remove the temporary file; safe to call twice or after commit."""
        if self._done:
            return
        self._done = True
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
        self.temp_path.unlink(missing_ok=True)
        logger.info("discarded partial %s after %d rows", self.path, self._rows)

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            if exc_type is None:
                logger.warning("CSV sink for %s left without commit; discarding it", self.path)
            self.abort()
