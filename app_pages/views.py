"""Views: saved, named selections — private or shared; open, export or schedule one from here."""

import streamlit as st

from nano_export import filters, views
from nano_export.models import ExportRequest
from nano_export.ui import context, exporting, session, sidebar, widgets

user = session.require_user()
settings = context.app_settings()
engine = context.app_engine(settings)

st.title("Saved views")
st.caption(
    "A view is a dataset, its filters and (optionally) columns, under a name. Yours are private "
    "unless you share them; teammates' shared views are listed as OWNER/NAME."
)
if flash := st.session_state.pop("nx_views_flash", None):
    st.success(flash)

with widgets.friendly_errors():
    selection = sidebar.filter_sidebar(settings.db_url)
    sidebar.page_notices(selection)
    found = views.list_views(engine, user=user.username)
    if found:
        st.dataframe(
            [
                {
                    "view": v.name if v.owner == user.username else v.ref,
                    "owner": v.owner,
                    "dataset": v.dataset,
                    "shared": "shared" if v.shared else "private",
                    "filters": filters.describe(v.filters),
                    "columns": ", ".join(v.columns) if v.columns else "all",
                    "updated (UTC)": v.updated_at,
                }
                for v in found
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "updated (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
            },
        )
        by_ref = {v.ref: v for v in found}
        ref = st.selectbox(
            "View",
            list(by_ref),
            key="nx_views_pick",
            format_func=lambda r: by_ref[r].name if by_ref[r].owner == user.username else r,
        )
        chosen = by_ref[ref]
        request = ExportRequest(
            dataset=chosen.dataset, filters=chosen.filters, columns=chosen.columns
        )
        cols = st.columns(5)
        if cols[0].button("Open in Explore", key="nx_views_open", icon=":material/insights:"):
            sidebar.load_spec(chosen.dataset, chosen.filters)
            st.switch_page("app_pages/explore.py")
        if cols[1].button("Open in Rows", key="nx_views_rows", icon=":material/table_rows:"):
            sidebar.load_spec(chosen.dataset, chosen.filters)
            st.switch_page("app_pages/rows.py")
        if cols[2].button("Export…", key="nx_views_export", icon=":material/download:"):
            exporting.load_request(request, source=f"the view {chosen.ref}")
            st.switch_page("app_pages/export.py")
        if cols[3].button("Schedule…", key="nx_views_schedule", icon=":material/schedule:"):
            sidebar.load_spec(chosen.dataset, chosen.filters)
            st.session_state["export_request"] = request
            st.switch_page("app_pages/schedules.py")
        mine = chosen.owner == user.username or user.is_admin
        if mine and cols[4].button("Delete", key="nx_views_delete", icon=":material/delete:"):
            views.delete_view(engine, name=chosen.ref, user=user.username, role=user.role)
            st.session_state["nx_views_flash"] = f"Deleted the view {chosen.ref}."
            st.rerun()
    else:
        st.info("No saved views yet — save the current selection below.", icon=":material/inbox:")

    st.subheader("Save the current selection")
    if selection.spec is None:
        st.caption("Fix the filter in the sidebar first.")
        st.stop()
    st.caption(f"**{selection.dataset}** · {filters.describe(selection.spec)}")
    current = st.session_state.get("export_request")
    columns = (
        current.columns
        if isinstance(current, ExportRequest) and current.dataset == selection.dataset
        else None
    )
    with st.form("nx_views_new"):
        name = st.text_input("Name", key="nx_views_name", max_chars=128)
        shared = st.toggle("Share with the team", key="nx_views_shared")
        if columns:
            st.caption("Columns from the Export page: " + ", ".join(columns))
        submitted = st.form_submit_button("Save view", type="primary", key="nx_views_save")
    if submitted:
        saved = views.save_view(
            engine,
            name=name,
            owner=user.username,
            dataset=selection.dataset,
            spec=selection.spec,
            columns=columns,
            shared=shared,
        )
        st.session_state["nx_views_flash"] = (
            f"Saved the view {saved.name!r} ({'shared' if saved.shared else 'private'})."
        )
        st.rerun()
