"""The export formats: their names, download types, one-line hints, and the writer of each.

Every format is written by a sink that keeps the same contract (``sinkfile``): chunks in, a
temporary file, one published file out with its size and sha256. The file extension is the
format's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from nano_export.csvfmt import CsvSink
from nano_export.models import ExportFormat
from nano_export.sinkfile import XLSX_SHEET_ROWS, Sink

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind


@dataclass(frozen=True)
class Format:
    """One export format: its name (also the file extension), download type and a hint."""

    name: ExportFormat
    content_type: str
    hint: str
    #: Already compressed: an email attaches it as it is rather than gzip it.
    compressed: bool


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("csv", "text/csv; charset=utf-8", "Plain CSV: opens anywhere.", False),
        Format("csv.gz", "application/gzip", "CSV, gzip-compressed: several times smaller.", True),
        Format(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Excel workbook: typed cells, a new sheet every 1,048,575 rows.",
            True,
        ),
        Format(
            "parquet",
            "application/vnd.apache.parquet",
            "Parquet: typed columns, compressed, fastest to load in pandas or Arrow.",
            True,
        ),
        Format("jsonl", "application/jsonl", "JSON Lines: one JSON object per row.", False),
        Format("jsonl.gz", "application/gzip", "JSON Lines, gzip-compressed.", True),
    )
}
FORMAT_NAMES: tuple[str, ...] = get_args(ExportFormat)


def sheets_for(rows: int, sheet_rows: int = XLSX_SHEET_ROWS) -> int:
    """How many worksheets an xlsx file of ``rows`` data rows has (at least one)."""
    return max(1, math.ceil(rows / sheet_rows))


def open_sink(
    fmt: ExportFormat,
    path: Path,
    *,
    columns: list[str],
    kinds: Mapping[str, Kind],
    excel: bool = False,
    manifest: Mapping[str, Any] | None = None,
    sheet_rows: int = XLSX_SHEET_ROWS,
) -> Sink:
    """The writer of ``fmt`` for a file at ``path`` (written to a temporary name until commit).

    ``excel`` (a UTF-8 byte-order mark) applies to CSV only; ``manifest`` is stored in Parquet's
    key-value metadata, and its ``exported_at`` is an xlsx workbook's creation time;
    ``sheet_rows`` is the data rows per xlsx worksheet.
    """
    if fmt in ("csv", "csv.gz"):
        return CsvSink(path, columns=columns, kinds=kinds, gzip=fmt == "csv.gz", excel=excel)
    if fmt in ("jsonl", "jsonl.gz"):
        from nano_export.jsonlfmt import JsonlSink

        return JsonlSink(path, columns=columns, kinds=kinds, gzip=fmt == "jsonl.gz")
    if fmt == "parquet":
        from nano_export.parquetfmt import ParquetSink

        return ParquetSink(path, columns=columns, kinds=kinds, manifest=manifest)
    if fmt == "xlsx":
        from nano_export.xlsxfmt import XlsxSink

        at = (manifest or {}).get("exported_at")
        created = datetime.fromisoformat(at) if isinstance(at, str) else None
        return XlsxSink(path, columns=columns, kinds=kinds, sheet_rows=sheet_rows, created=created)
    raise ValueError(f"unknown format {fmt!r}; the formats are: {', '.join(FORMAT_NAMES)}")
