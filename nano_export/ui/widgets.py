"""Shared page pieces: friendly errors, number formats, links and the CLI equivalent."""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st

from nano_export.datasets import get_dataset
from nano_export.errors import (
    BadInput,
    ExportLimitReached,
    InvalidFilter,
    NanoExportError,
    NotFound,
    PermissionDenied,
)
from nano_export.models import ExportRecord, ExportRequest

log = logging.getLogger(__name__)

#: Status words as shown: plain text (emoji show as empty boxes without an emoji font).
STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "expired": "Expired (file removed)",
}


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Show domain errors as messages and anything unexpected without a traceback."""
    try:
        yield
    except ExportLimitReached as exc:
        st.warning(
            f"You already run the maximum number of exports. {exc}", icon=":material/hourglass_top:"
        )
    except PermissionDenied as exc:
        st.error(f"Not allowed: {plain(exc)}", icon=":material/lock:")
    except InvalidFilter as exc:  # the message quotes the filter text: shown as text
        st.error(f"Invalid filter: {plain(exc)}", icon=":material/warning:")
    except NotFound as exc:
        st.warning(plain(exc))
    except BadInput as exc:
        st.error(plain(exc), icon=":material/warning:")
    except NanoExportError as exc:
        st.error(plain(exc))
    except Exception:
        log.exception("dashboard error")
        st.error("Something went wrong on our side; it has been logged. Please try again.")


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
#: Where GitHub-flavoured markdown would start a link of its own (``http://…``, ``www.…``, mails).
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(?=://)|(?<=www)(?=\.)|(?=@)")


def plain(text: object) -> str:
    """``text`` for Streamlit's markdown, shown as typed: never a link, an image or a directive.

    Every ASCII punctuation mark gets a backslash (CommonMark's escape, which also defuses
    ``:icon:``, ``:color[…]`` and ``$…$``), a zero-width space keeps a URL or an address from being
    linked automatically, and line breaks become spaces.
    """
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINK.sub("\u200b", flat))


def literal(text: object) -> str:
    """``text`` as a markdown code span: literal, whatever it holds (filter expressions)."""
    flat = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {flat} {fence}"


def fmt_int(value: int | None) -> str:
    """1234567 → "1,234,567"; None → "—"."""
    return "—" if value is None else f"{value:,}"


def fmt_bytes(value: int | float | None) -> str:
    """A size for people: "12.3 MB"."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def fmt_usd(value: float | None) -> str:
    """A cost: "$12.34" (more decimals for small amounts)."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def download_url(export_id: str) -> str:
    """The API route that streams a finished export (accepts the login cookie)."""
    return f"/api/exports/{export_id}/download"


def download_link(rec: ExportRecord) -> None:
    """A download link for a finished export (never the file's bytes through the websocket)."""
    st.markdown(
        f'<a class="nx-download" href="{download_url(rec.id)}" download="{rec.file_name}">'
        f"Download {rec.file_name}</a>",
        unsafe_allow_html=True,
    )


def cli_command(request: ExportRequest, *, user: str) -> str:
    """The ``nano-export export …`` line that makes the same file."""
    words = ["nano-export", "export", request.dataset, "--user", user]
    spec = request.filters
    for key in ("provider", "model", "test"):
        for value in getattr(spec, key):
            words += [f"--{key}", value]
    if spec.since is not None:
        words += ["--since", spec.since.isoformat()]
    if spec.until is not None:
        words += ["--until", spec.until.isoformat()]
    if spec.success is not None:
        words.append("--success" if spec.success else "--failed")
    if spec.where:
        words += ["--where", spec.where]
    if request.columns:
        words += ["--columns", ",".join(request.columns)]
    for old, new in request.rename.items():
        words += ["--rename", f"{old}={new}"]
    words += ["--privacy", request.privacy]
    if request.format != "csv":
        words += ["--format", request.format]
    if request.excel:
        words.append("--excel")
    return shlex.join(words)


def display_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows for a grid: blanks for empty cells (see ``tables.blank_nulls``)."""
    from nano_export.ui.tables import blank_nulls

    return blank_nulls(frame)


def column_help(dataset: str) -> dict[str, Any]:
    """Grid column settings of a dataset: each header's hover help from the data dictionary."""
    ds = get_dataset(dataset)
    return {c.name: st.column_config.Column(c.name, help=c.help) for c in ds.columns}


def progress_fraction(rec: ExportRecord) -> float:
    """Share of the export done (0..1)."""
    if rec.status == "succeeded":
        return 1.0
    if not rec.rows_total:
        return 0.0
    return max(0.0, min(1.0, rec.rows_done / rec.rows_total))


STYLE = """
<style>
/* Less empty space above the title: the page's status and results start higher. */
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
[data-testid="stMetric"] {
  background: rgba(76, 110, 245, 0.06);
  border: 1px solid rgba(76, 110, 245, 0.18);
  border-radius: 10px;
  padding: 12px 16px;
}
[data-testid="stMetricLabel"] p { font-size: 0.85rem; opacity: 0.8; }
a.nx-download {
  display: inline-block; padding: 0.45rem 1rem; border-radius: 8px;
  background: #4C6EF5; color: white !important; text-decoration: none; font-weight: 600;
}
a.nx-download:hover { background: #3B5BDB; }
</style>
"""


def page_style() -> None:
    """The dashboard's small style sheet (metric cards, download button)."""
    st.markdown(STYLE, unsafe_allow_html=True)
