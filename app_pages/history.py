"""History: the user's exports (admins: everyone's) with status, download, cancel and re-run."""

import streamlit as st

from nano_export import jobs
from nano_export.models import ACTIVE_STATUSES, ExportRequest
from nano_export.storage import get_storage
from nano_export.ui import context, exporting, session, tables, widgets

user = session.require_user()
settings = context.app_settings()
engine = context.app_engine(settings)
store = get_storage(settings)

st.title("History")
st.caption("Everyone's exports (admin view)." if user.is_admin else "Your exports, newest first.")
with widgets.friendly_errors():
    records = jobs.list_exports(
        engine, user=None if user.is_admin else user.username, limit=500, settings=settings
    )
    if not records:
        st.info("No exports yet — start one on the Export page.", icon=":material/inbox:")
        st.stop()
    frame = tables.exports_frame(records, storage=store)
    st.dataframe(
        tables.blank_nulls(frame, keep=("download",)),
        hide_index=True,
        width="stretch",
        column_config={
            "created": st.column_config.DatetimeColumn("Created (UTC)", format="YYYY-MM-DD HH:mm"),
            "download": st.column_config.LinkColumn("Download", display_text="download"),
            "rows": st.column_config.NumberColumn("Rows", format="localized"),
            "sha256": st.column_config.TextColumn("sha256", width="small"),
            "id": None,
        },
    )
    if st.button("Refresh", icon=":material/refresh:"):
        st.rerun()

    st.subheader("Selected export")
    by_id = {r.id: r for r in records}
    chosen = st.selectbox(
        "Export",
        list(by_id),
        format_func=lambda i: (
            f"{by_id[i].created_at:%Y-%m-%d %H:%M} UTC · {by_id[i].dataset} · {by_id[i].status}"
            + (f" · {by_id[i].owner}" if user.is_admin else "")
        ),
        key="nx_history_pick",
    )
    rec = by_id[chosen]
    exporting.show_record(rec, download=jobs.downloadable(rec, store))
    cols = st.columns(3)
    if rec.status in ACTIVE_STATUSES and cols[0].button("Cancel export", key="nx_hist_cancel"):
        jobs.cancel_export(
            engine, export_id=rec.id, user=user.username, role=user.role, interface="dashboard"
        )
        st.rerun()
    if cols[1].button(
        "Run again with the same spec",
        key="nx_hist_again",
        help="Opens the Export page with this export's filters and options; nothing starts "
        "until you press Start export there.",
    ):
        again = ExportRequest(
            dataset=rec.dataset,
            filters=rec.filters,
            columns=rec.columns,
            rename=rec.rename,
            privacy=rec.privacy,
            format=rec.format,
            excel=rec.excel,
        )
        exporting.load_request(again, source=f"the spec of export {rec.id}")
        st.switch_page("app_pages/export.py")
