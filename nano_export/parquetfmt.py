"""Parquet files, written through pyarrow's ``ParquetWriter``: typed columns, zstd, one row group
per chunk.

Columns keep their kinds' types (int64, float64, bool, UTC microsecond timestamps, strings; see
``typedcells``). The file's key-value metadata carries the export's manifest under
:data:`MANIFEST_KEY` (a JSON object: dataset, filters, columns, privacy level, nano-export version
and export time), so a file found on its own still says what it holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from nano_export.sinkfile import FileSink
from nano_export.typedcells import Chunk, arrow_schema, typed_table

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind

#: The key of the manifest in the file's key-value metadata.
MANIFEST_KEY = "nano_export.manifest"
COMPRESSION = "zstd"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest stored in a Parquet export's metadata."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(MANIFEST_KEY.encode())
    if raw is None:
        raise ValueError(f"{path} has no nano-export manifest")
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


class ParquetSink(FileSink):
    """One Parquet file written chunk by chunk to a temporary name and renamed on commit."""

    kind = "parquet"

    def __init__(
        self,
        path: Path,
        *,
        columns: list[str],
        kinds: Mapping[str, Kind],
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        super().__init__(path, columns=columns)
        self.kinds = dict(kinds)
        metadata = {MANIFEST_KEY: json.dumps(dict(manifest or {}), sort_keys=True, default=str)}
        self.schema = arrow_schema(self.columns, self.kinds, metadata)
        self._writer = pq.ParquetWriter(str(self.temp_path), self.schema, compression=COMPRESSION)

    def write(self, df: Chunk) -> None:
        """Append one chunk as one row group."""
        self._check(df)
        if len(df) == 0:
            return
        table = typed_table(df, self.kinds)
        self._writer.write_table(table, row_group_size=len(table))
        self._rows += len(df)

    def _finish(self) -> None:
        self._writer.close()

    def _close(self) -> None:
        self._writer.close()
