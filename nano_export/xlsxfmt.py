"""Excel workbooks (``.xlsx``), written row by row through XlsxWriter's constant-memory mode.

- Text is always a text cell, never a formula, a number or a link: the cell shows exactly the
  value (no formula guard is needed, and none is added).
- Numbers are numbers (Excel keeps 15 significant digits of a float), booleans are booleans,
  and timestamps are Excel date-times in UTC shown as ``yyyy-mm-dd hh:mm:ss.000`` (Excel keeps
  milliseconds, so they are rounded to the millisecond).
- Row 1 of every sheet is the header, bold and frozen; column widths follow the header and the
  first chunk's values.
- A cell over Excel's 32,767-character limit is cut, ending in :data:`CUT_MARKER`, and counted.
- After ``sheet_rows`` data rows (Excel's limit: 1,048,575 below the header) the rows continue on a
  new sheet that starts with the header again, so no row is lost.

Constant-memory mode keeps one row in memory and flushes each finished row to a temporary file of
XlsxWriter's (in the export folder); the workbook is assembled into the temporary ``.part`` file on
:meth:`XlsxSink.commit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter

from nano_export.sinkfile import XLSX_SHEET_ROWS, FileSink
from nano_export.typedcells import (
    FALSE,
    Chunk,
    arrow_number,
    chunk_columns,
    numpy_bools,
    numpy_floats,
    typed_column,
)

if TYPE_CHECKING:  # datasets sits above this module; only its Kind alias is needed
    from nano_export.datasets import Kind

#: Excel's row limit (1,048,576) less the header row.
SHEET_ROWS = XLSX_SHEET_ROWS
#: Excel's cell limit, in characters as Excel counts them (UTF-16 code units).
CELL_CHARS = 32_767
_HALF_CELL = arrow_number(CELL_CHARS // 2)
#: Ends a cell cut at the limit, so the reader sees that text is missing.
CUT_MARKER = "…[cut at Excel's 32,767-character cell limit]"
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
SHEET_NAME = "Data"
_WIDTHS: dict[str, tuple[int, int]] = {  # kind → (min, max) width in characters
    "int": (8, 20),
    "float": (10, 20),
    "bool": (7, 10),
    "datetime": (24, 24),
    "text": (10, 60),
}


def _units(text: str) -> int:
    """Length as Excel counts it: UTF-16 code units (a character beyond U+FFFF counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(values: list[Any], arr: pa.Array) -> int:
    """Cut the text values over the cell limit in place; return how many were cut."""
    # A cell of more than CELL_CHARS / 2 characters may be over the limit in UTF-16 units.
    maybe = pc.fill_null(pc.greater(pc.utf8_length(arr), _HALF_CELL), FALSE)
    if not pc.any(maybe).as_py():
        return 0
    cut = 0
    room = CELL_CHARS - _units(CUT_MARKER)
    for i in numpy_bools(maybe).nonzero()[0]:
        text = values[i]
        if _units(text) <= CELL_CHARS:
            continue
        kept = text[:room]
        while _units(kept) > room:  # characters beyond U+FFFF take two units each
            kept = kept[: len(kept) - (_units(kept) - room + 1) // 2]
        values[i] = kept + CUT_MARKER
        cut += 1
    return cut


class XlsxSink(FileSink):
    """One workbook written chunk by chunk to a temporary name and renamed on :meth:`commit`."""

    kind = "xlsx"

    def __init__(
        self,
        path: Path,
        *,
        columns: list[str],
        kinds: Mapping[str, Kind],
        sheet_rows: int = SHEET_ROWS,
        created: datetime | None = None,
    ) -> None:
        """``created`` is the workbook's creation time in its properties (now by default): the
        export's own time, so that the same export written twice gives the same bytes."""
        if not 1 <= sheet_rows <= SHEET_ROWS:
            raise ValueError(f"sheet_rows must be between 1 and {SHEET_ROWS}, not {sheet_rows}")
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise ValueError(f"no kind given for column(s): {', '.join(missing)}")
        super().__init__(path, columns=columns)
        self.kinds = dict(kinds)
        self.sheet_rows = sheet_rows
        self._book = xlsxwriter.Workbook(
            str(self.temp_path),
            {
                "constant_memory": True,
                "tmpdir": str(self.path.parent),
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "nan_inf_to_errors": True,
                "default_date_format": DATE_FORMAT,
            },
        )
        if created is not None:
            self._book.set_properties({"created": created})
        self._bold = self._book.add_format({"bold": True})
        self._sheet: Any = None
        self._in_sheet = 0
        self._widths: list[float] | None = None
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = SHEET_NAME if self.sheets == 1 else f"{SHEET_NAME} {self.sheets}"
        sheet = self._book.add_worksheet(name)
        for col, name_ in enumerate(self.columns):
            sheet.write_string(0, col, name_, self._bold)
        sheet.freeze_panes(1, 0)
        if self._widths is not None:
            for col, width in enumerate(self._widths):
                sheet.set_column(col, col, width)
        self._sheet = sheet
        self._in_sheet = 0

    def _set_widths(self, columns: list[pa.Array]) -> None:
        widths = []
        for name, arr in zip(self.columns, columns, strict=True):
            low, high = _WIDTHS[self.kinds[name]]
            width = float(max(low, len(name) + 2))
            if self.kinds[name] == "text" and len(arr) and arr.null_count < len(arr):
                lengths = numpy_floats(pc.utf8_length(arr))
                typical = float(np.nanquantile(lengths, 0.9))  # nulls are NaN here
                width = max(width, typical + 2)
            widths.append(min(width, float(max(high, len(name) + 2))))
        self._widths = widths
        for col, width in enumerate(widths):
            self._sheet.set_column(col, col, width)

    def write(self, df: Chunk) -> None:
        """Append one chunk, row by row, continuing on a new sheet at the sheet limit."""
        self._check(df)
        if len(df) == 0:
            return
        arrays = [
            typed_column(column, self.kinds[name], name)
            for name, column in zip(self.columns, chunk_columns(df), strict=True)
        ]
        if self._widths is None:
            self._set_widths(arrays)
        values: list[list[Any]] = []
        for name, arr in zip(self.columns, arrays, strict=True):
            kind = self.kinds[name]
            if kind == "datetime":  # naive UTC, to the millisecond Excel keeps
                arr = pc.round_temporal(pc.cast(arr, pa.timestamp("us")), unit="millisecond")
            column = arr.to_pylist()
            if kind == "text":
                self.truncated_cells += _cut(column, arr)
            values.append(column)
        for row in zip(*values, strict=True):
            if self._in_sheet == self.sheet_rows:
                self._new_sheet()
            self._in_sheet += 1
            self._sheet.write_row(self._in_sheet, 0, row)
        self._rows += len(df)

    def _finish(self) -> None:
        self._book.close()

    def _close(self) -> None:
        self._book.close()  # removes XlsxWriter's temporary row files
