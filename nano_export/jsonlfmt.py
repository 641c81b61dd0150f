"""JSON Lines (``.jsonl``, ``.jsonl.gz``): one JSON object per row, keys in the file's column order.

Values are typed: numbers as JSON numbers (the same digits as the CSV file, never an exponent),
booleans as ``true``/``false``, timestamps as ISO 8601 UTC strings
(``"2025-08-10T14:03:07.123456Z"``), text as JSON strings with non-ASCII characters written as
UTF-8 (except U+0085, U+2028 and U+2029, escaped so that no line splitter breaks a row), and
``null`` for a missing value (also for an infinite float, which JSON cannot hold). Each chunk is
assembled into one buffer of bytes with Arrow kernels, hashed and written as it goes.
"""

from __future__ import annotations

import gzip as gzip_module
import json
from collections.abc import Mapping
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nano_export.csvcells import format_cells
from nano_export.sinkfile import Digest, FileSink
from nano_export.typedcells import (
    EMPTY,
    TEXT,
    Chunk,
    arrow_text,
    arrow_texts,
    chunk_names,
    combined,
)

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind

GZIP_LEVEL = 1
# Arrow scalars are built by ``typedcells`` (pa.scalar would import pandas; see there).
_NULL = arrow_text("null")
_QUOTE = arrow_text('"')
_NO_TEXT = pa.nulls(1, TEXT)[0]
_END = arrow_text("}\n")
_COMMA = arrow_text(",")
#: Characters some line splitters (Python's ``str.splitlines``) break on: escaped, so that every
#: line of the file is one whole JSON object whatever reads it.
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_BREAKS = "[\u0085\u2028\u2029]"


def _json_values(arr: pa.Array, kind: str) -> pa.Array:
    """A formatted column (see ``csvcells.format_cells``) as JSON literals, null as ``null``."""
    if kind == "text":
        arr = arrow_texts([None if v is None else encode_basestring(v) for v in arr.to_pylist()])
        if pc.any(pc.match_substring_regex(arr, _BREAKS)).as_py():
            for char, escape in _LINE_BREAKS.items():
                arr = pc.replace_substring(arr, char, escape)
    elif kind == "datetime":
        arr = pc.binary_join_element_wise(_QUOTE, arr, _QUOTE, EMPTY)
    elif kind == "float":  # JSON has no infinities
        arr = pc.if_else(pc.match_substring(arr, "inf"), _NO_TEXT, arr)
    return pc.fill_null(arr, _NULL)


def encode_lines(df: Chunk, kinds: Mapping[str, Kind]) -> memoryview:
    """The JSON Lines bytes of a chunk: ``{"col": value, ...}\\n`` per row."""
    cells = format_cells(df, kinds, guard=False)
    parts = []
    for i, (name, arr) in enumerate(zip(chunk_names(df), cells, strict=True)):
        key = arrow_text(("{" if i == 0 else "") + json.dumps(str(name), ensure_ascii=False) + ":")
        parts.append(pc.binary_join_element_wise(key, _json_values(arr, kinds[name]), EMPTY))
    parts[-1] = pc.binary_join_element_wise(parts[-1], _END, EMPTY)
    lines = combined(pc.binary_join_element_wise(*parts, _COMMA))
    if len(lines) == 0:
        return memoryview(b"")
    _validity, offsets_buf, data = lines.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(data)[start:end]


class JsonlSink(FileSink):
    """One JSON Lines file (gzip-compressed with ``gzip=True``), published on commit."""

    kind = "jsonl"

    def __init__(
        self,
        path: Path,
        *,
        columns: list[str],
        kinds: Mapping[str, Kind],
        gzip: bool = False,
    ) -> None:
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        super().__init__(path, columns=columns)
        self.kinds = dict(kinds)
        self._raw = self.temp_path.open("wb")
        self._digest = Digest(self._raw)
        self._out: Digest | gzip_module.GzipFile = self._digest
        if gzip:
            self._out = gzip_module.GzipFile(
                filename=self.path.name.removesuffix(".gz"),
                mode="wb",
                fileobj=self._digest,
                compresslevel=GZIP_LEVEL,
                mtime=0,
            )

    def write(self, df: Chunk) -> None:
        """Append one chunk, one line per row."""
        self._check(df)
        if len(df) == 0:
            return
        self._out.write(encode_lines(df, self.kinds))
        self._rows += len(df)

    def _finish(self) -> tuple[int, str]:
        if isinstance(self._out, gzip_module.GzipFile):
            self._out.close()  # writes the gzip trailer through the digest
        self._raw.close()
        return self._digest.size, self._digest.sha.hexdigest()

    def _close(self) -> None:
        try:
            if isinstance(self._out, gzip_module.GzipFile):
                self._out.close()
        finally:
            self._raw.close()
