"""Export page pieces: the request form, the progress fragment and the result."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nano_export import jobs, privacy
from nano_export.datasets import Dataset, get_dataset
from nano_export.db import get_engine
from nano_export.formats import FORMATS as FORMAT_INFO
from nano_export.formats import sheets_for
from nano_export.models import (
    ALLOWED_LEVELS,
    FINAL_STATUSES,
    ExportFormat,
    ExportRecord,
    ExportRequest,
    Privacy,
)
from nano_export.settings import Settings
from nano_export.ui import data, widgets
from nano_export.ui.session import CurrentUser
from nano_export.ui.sidebar import Selection

#: The format picker: label → (format, UTF-8 BOM for Excel, one-line hint).
FORMATS: dict[str, tuple[ExportFormat, bool, str]] = {
    "CSV": ("csv", False, FORMAT_INFO["csv"].hint),
    "CSV, gzip": ("csv.gz", False, FORMAT_INFO["csv.gz"].hint),
    "Excel workbook": ("xlsx", False, FORMAT_INFO["xlsx"].hint),
    "Parquet": ("parquet", False, FORMAT_INFO["parquet"].hint),
    "JSON Lines": ("jsonl", False, FORMAT_INFO["jsonl"].hint),
    "JSON Lines, gzip": ("jsonl.gz", False, FORMAT_INFO["jsonl.gz"].hint),
    "Excel-compatible CSV": ("csv", True, "CSV with a byte-order mark, for older Excel."),
}
ACTIVE = "nx_export_id"
K_COLUMNS, K_RENAMES, K_PRIVACY, K_FORMAT = "nx_columns", "nx_renames", "nx_privacy", "nx_format"
K_COLUMNS_MODE = "nx_columns_mode"
#: A notice for the Export page after History's "Run again" loaded a spec into the builder.
LOADED_NOTICE = "_nx_loaded_notice"
_PENDING_RENAME = "_nx_pending_rename"
ALL_COLUMNS, CHOOSE_COLUMNS = "All columns", "Choose columns"


def request_form(user: CurrentUser, selection: Selection) -> ExportRequest | None:
    """Columns, renames, privacy and format; returns the request (also in session state)."""
    assert selection.spec is not None
    ds = get_dataset(selection.dataset)
    levels = ALLOWED_LEVELS[user.role]
    left, right = st.columns(2)
    with left:
        default_level: Privacy = "standard" if "standard" in levels else levels[0]
        if st.session_state.get(K_PRIVACY) not in levels:
            st.session_state[K_PRIVACY] = default_level
        level: Privacy = st.radio(
            "Privacy level",
            levels,
            key=K_PRIVACY,
            horizontal=True,
            help="public: no free text, identities hashed · standard: personal data masked · "
            "full: as stored. Credentials are redacted at every level.",
        )
        if len(levels) == 1:
            st.caption(
                f"Your role ({user.role}) may export the **{levels[0]}** level only: free-text "
                "columns are left out and identities hashed. Ask an admin for the analyst role "
                "to export masked text."
            )
    with right:
        fmt = st.radio(
            "Format",
            list(FORMATS),
            key=K_FORMAT,
            horizontal=True,
            captions=[hint for _name, _excel, hint in FORMATS.values()],
        )
    available = privacy.columns_for_level(list(ds.column_names), level)
    if st.session_state.get(f"{K_COLUMNS}_ds") != ds.name:
        st.session_state[K_COLUMNS] = available
        st.session_state[f"{K_COLUMNS}_ds"] = ds.name
    st.session_state[K_COLUMNS] = [
        c for c in st.session_state.get(K_COLUMNS, available) if c in available
    ]
    if K_COLUMNS_MODE not in st.session_state:
        st.session_state[K_COLUMNS_MODE] = ALL_COLUMNS
    mode = st.segmented_control(
        "Columns",
        [ALL_COLUMNS, CHOOSE_COLUMNS],
        key=K_COLUMNS_MODE,
        help=f"All {len(available)} columns of the dataset at this privacy level, or pick and "
        "order them yourself.\n\n" + column_docs(ds, available),
    )
    if mode == CHOOSE_COLUMNS:
        columns = st.multiselect(
            "Columns (in this order)",
            available,
            key=K_COLUMNS,
            label_visibility="collapsed",
            help="Pick and order the columns of the file.\n\n" + column_docs(ds, available),
        )
    else:
        columns = list(available)
        st.caption(f"All {len(available)} columns: " + ", ".join(available))
    if level == "public":
        st.caption("Free-text columns are left out at the public level.")
    pending: dict[str, str] = st.session_state.get(_PENDING_RENAME) or {}
    with st.expander("Rename columns", expanded=bool(pending)):
        renames_df = st.data_editor(
            pd.DataFrame({"column": columns, "new name": [pending.get(c, "") for c in columns]}),
            key=K_RENAMES,
            hide_index=True,
            disabled=["column"],
            width="stretch",
            height=min(38 + 35 * max(len(columns), 1), 280),
        )
    if not columns:
        st.warning("Choose at least one column.")
        return None
    rename = {
        str(r["column"]): str(r["new name"]).strip()
        for r in renames_df.to_dict("records")
        if str(r.get("new name") or "").strip() and str(r["new name"]).strip() != r["column"]
    }
    fmt_name, excel, _hint = FORMATS[fmt]
    request = ExportRequest(
        dataset=ds.name,
        filters=selection.spec,
        columns=None if list(columns) == list(available) else list(columns),
        rename=rename,
        privacy=level,
        format=fmt_name,
        excel=excel,
    )
    st.session_state["export_request"] = request
    return request


def column_docs(ds: Dataset, names: list[str]) -> str:
    """The data dictionary of ``names`` as a Markdown list, for a column picker's help."""
    return "\n".join(f"- **{name}**: {ds.column(name).help}" for name in names)


def load_request(request: ExportRequest, *, source: str) -> None:
    """Put an earlier export's spec into the builder (sidebar filters and this form); starts
    nothing: the Export page shows it and waits for "Start export"."""
    from nano_export.ui import sidebar

    sidebar.load_spec(request.dataset, request.filters)
    st.session_state[K_PRIVACY] = request.privacy
    fmt = next(
        (label for label, v in FORMATS.items() if v[:2] == (request.format, request.excel)), "CSV"
    )
    st.session_state[K_FORMAT] = fmt
    st.session_state[f"{K_COLUMNS}_ds"] = request.dataset
    if request.columns:
        st.session_state[K_COLUMNS_MODE] = CHOOSE_COLUMNS
        st.session_state[K_COLUMNS] = list(request.columns)
    else:
        st.session_state[K_COLUMNS_MODE] = ALL_COLUMNS
        st.session_state.pop(K_COLUMNS, None)
    st.session_state.pop(K_RENAMES, None)
    st.session_state[_PENDING_RENAME] = dict(request.rename)
    st.session_state.pop(ACTIVE, None)  # "Current export" would show the old one
    st.session_state[LOADED_NOTICE] = (
        f"Loaded {source} into the filters and the form below. Check it, then press Start export."
    )


def estimate_row(settings: Settings, request: ExportRequest) -> int:
    """The dry-run estimate: matching rows and approximate size; returns the row count."""
    est = data.estimate(
        settings.db_url,
        request.dataset,
        request.filters.to_json(),
        tuple(request.columns) if request.columns else None,
        request.privacy,
        settings.resolved_secret(),
    )
    size = est.approx_bytes / 4 if request.format == "csv.gz" else est.approx_bytes
    sized = request.format in ("csv", "csv.gz")
    cols = st.columns(4 if request.format == "xlsx" else 3)
    cols[0].metric("Rows to export", widgets.fmt_int(est.rows))
    cols[1].metric(
        "Approximate size" if sized else "Approximate size as CSV",
        ("~" + widgets.fmt_bytes(size)) if est.rows else "—",
    )
    cols[2].metric("Privacy", request.privacy)
    if request.format == "xlsx":
        sheets = sheets_for(est.rows, settings.xlsx_sheet_rows)
        cols[3].metric(
            "Sheets",
            widgets.fmt_int(sheets),
            help=f"A new sheet, starting with the header, every {settings.xlsx_sheet_rows:,} rows.",
        )
    return est.rows


def start(settings: Settings, user: CurrentUser, request: ExportRequest) -> None:
    """Submit the export (its own thread runs it) and follow it on this page."""
    rec = jobs.submit_export(
        get_engine(settings.db_url),
        settings,
        user=user.username,
        role=user.role,
        request=request,
        interface="dashboard",
    )
    st.session_state[ACTIVE] = rec.id
    st.session_state.pop(_PENDING_RENAME, None)


def show_record(rec: ExportRecord, *, download: bool = True) -> None:
    """Status, progress and, when done, the download link of one export.

    ``download=False`` (a CLI or notebook ``--out`` file, which the server does not serve) shows
    a note instead of the link.
    """
    status = widgets.STATUS_LABELS.get(rec.status, rec.status)
    done = widgets.fmt_int(rec.rows_done)
    total = widgets.fmt_int(rec.rows_total)
    st.progress(widgets.progress_fraction(rec), text=f"{status} · {done} / {total} rows")
    if rec.status == "succeeded":
        st.success(
            f"Export finished: {widgets.fmt_int(rec.rows_done)} rows, "
            f"{widgets.fmt_bytes(rec.bytes)} · {rec.format} · "
            f"sha256 `{(rec.sha256 or '')[:16]}…`"
        )
        if rec.note:
            st.info(f"Note: {rec.note}.", icon=":material/info:")
        if download:
            widgets.download_link(rec)
        else:
            st.caption(
                "Written by the command line or a notebook to a file of its own, outside the "
                "export folder: not downloadable here."
            )
    elif rec.status == "failed":
        st.error(f"Export failed: {widgets.plain(rec.error or 'unknown reason')}")
    elif rec.status in ("cancelled", "expired"):
        st.warning(f"Export {rec.status}.")


@st.fragment(run_every=1)
def follow(settings: Settings, user: CurrentUser, export_id: str) -> None:
    """Poll the export row every second until it is final (threads never call st.*)."""
    engine = get_engine(settings.db_url)
    rec = jobs.get_export(
        engine, export_id=export_id, user=user.username, role=user.role, settings=settings
    )
    show_record(rec)
    if rec.status in FINAL_STATUSES:
        st.session_state[f"{ACTIVE}_final"] = export_id
        st.rerun(scope="app")  # stop polling: the page now shows the final state statically
    if st.button("Cancel export", key=f"cancel_{export_id}"):
        with widgets.friendly_errors():
            jobs.cancel_export(
                engine,
                export_id=export_id,
                user=user.username,
                role=user.role,
                interface="dashboard",
            )
            st.toast("Cancelling…")


def active_export(settings: Settings, user: CurrentUser) -> None:
    """The export started from this page: a live fragment while it runs, then its result."""
    export_id = st.session_state.get(ACTIVE)
    if not export_id:
        return
    st.subheader("Current export")
    if st.session_state.get(f"{ACTIVE}_final") == export_id:
        rec = jobs.get_export(
            get_engine(settings.db_url), export_id=export_id, user=user.username, role=user.role
        )
        show_record(rec)
    else:
        follow(settings, user, export_id)
