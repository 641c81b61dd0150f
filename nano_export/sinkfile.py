"""The file contract every export writer keeps: a temporary file, published whole or not at all.

A writer (``FileSink`` subclass, or ``csvfmt.CsvSink`` which keeps the same contract on its own)
writes chunks to ``.<final name>.<random>.part`` in the folder of the final path. ``commit()``
finishes the file, fsyncs it, renames it to the final path and returns a ``SinkResult`` with the
size and sha256 of its bytes; ``abort()`` (or leaving the ``with`` block without commit) removes
the temporary file. A final path never holds a partial file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

from nano_export.typedcells import Chunk, chunk_names

logger = logging.getLogger(__name__)

#: Suffix of temporary files; a process that died mid-export may leave ``.<name>.*.part`` behind.
TEMP_SUFFIX = ".part"
#: Excel's row limit (1,048,576) less the header row: data rows per xlsx worksheet.
XLSX_SHEET_ROWS = 1_048_575


@dataclass(frozen=True)
class SinkResult:
    """A committed file: its final path, data rows, size on disk and sha256 (hex) of its bytes.

    ``truncated_cells`` counts cells cut at a format's cell-size limit (xlsx); ``sheets`` is the
    number of worksheets of a workbook (0 for other formats).
    """

    path: Path
    rows: int
    bytes: int
    sha256: str
    truncated_cells: int = 0
    sheets: int = 0


class Sink(Protocol):
    """What the export engine writes to: chunks in, one published file out."""

    @property
    def rows(self) -> int:
        """Data rows written so far."""
        ...

    def write(self, df: Chunk) -> None:
        """Append one chunk whose columns are exactly the file's, in order."""
        ...

    def commit(self) -> SinkResult:
        """Finish the file and publish it at its final path."""
        ...

    def abort(self) -> None:
        """Remove the temporary file; safe to call twice or after commit."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Digest:
    """A binary writer in front of a file that hashes and counts every byte written."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        """Hash, count and write ``data``."""
        self.sha.update(data)
        written = self.raw.write(data)
        self.size += written
        return written

    def flush(self) -> None:
        """Flush the file underneath."""
        self.raw.flush()


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in 1 MiB blocks."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FileSink:
    """Base of the typed writers: temporary file, rows, commit (fsync + rename) and abort.

    A subclass writes in :meth:`write` (counting ``self._rows``), finishes its file in
    :meth:`_finish` and releases it in :meth:`_close` (also called after a failure).
    """

    kind = "file"

    def __init__(self, path: Path, *, columns: list[str]) -> None:
        if not columns:
            raise ValueError(f"a {self.kind} file needs at least one column")
        self.path = Path(path)
        self.columns = list(columns)
        self._rows = 0
        self._done = False
        self.truncated_cells = 0
        self.sheets = 0
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX
        )
        os.close(fd)
        self.temp_path = Path(temp)
        logger.debug("writing %s via %s", self.path, self.temp_path)

    @property
    def rows(self) -> int:
        """Data rows written so far."""
        return self._rows

    def _check(self, df: Chunk) -> None:
        if self._done:
            raise RuntimeError(f"{self.kind} sink for {self.path} is already closed")
        names = chunk_names(df)
        if names != self.columns:
            raise ValueError(f"chunk columns {names} differ from the file's {self.columns}")

    def write(self, df: Chunk) -> None:  # pragma: no cover - every subclass overrides
        """Append one chunk whose columns are exactly ``columns``, in order."""
        raise NotImplementedError

    def _finish(self) -> tuple[int, str] | None:
        """Complete the file on disk; return its size and sha256 if already known."""
        raise NotImplementedError  # pragma: no cover

    def _close(self) -> None:
        """Release open handles without completing the file (after a failure)."""

    def commit(self) -> SinkResult:
        """Finish, fsync and rename the temporary file to the final path; return the result."""
        if self._done:
            raise RuntimeError(f"{self.kind} sink for {self.path} is already closed")
        try:
            known = self._finish()
            with self.temp_path.open("rb+") as f:
                os.fsync(f.fileno())
            size, sha = known or file_digest(self.temp_path)
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        fsync_dir(self.path.parent)
        result = SinkResult(self.path, self._rows, size, sha, self.truncated_cells, self.sheets)
        logger.info("wrote %s: %d rows, %d bytes", self.path, result.rows, result.bytes)
        return result

    def abort(self) -> None:
        """Remove the temporary file; safe to call twice or after commit."""
        if self._done:
            return
        self._done = True
        try:
            self._close()
        except Exception:  # a failed write is why we are aborting
            logger.debug("closing %s after a failure", self.temp_path, exc_info=True)
        self.temp_path.unlink(missing_ok=True)
        logger.info("discarded partial %s after %d rows", self.path, self._rows)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            if exc_type is None:
                logger.warning(
                    "%s sink for %s left without commit; discarding it", self.kind, self.path
                )
            self.abort()
