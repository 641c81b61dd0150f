"""Export: choose columns, renames, privacy and format; start, follow and download the file."""

import streamlit as st

from nano_export import filters
from nano_export.ui import context, exporting, session, sidebar, widgets

user = session.require_user()
settings = context.app_settings()

st.title("Export")
with widgets.friendly_errors():
    selection = sidebar.filter_sidebar(settings.db_url)
    sidebar.page_notices(selection)
    if loaded := st.session_state.pop(exporting.LOADED_NOTICE, None):
        st.info(loaded, icon=":material/replay:")
    # The export started here goes first: its progress and result are in view after the click.
    with widgets.friendly_errors():
        exporting.active_export(settings, user)
    if selection.spec is None:
        st.stop()
    st.caption(f"**{selection.dataset}** · {widgets.literal(filters.describe(selection.spec))}")
    request = exporting.request_form(user, selection)
    if request is not None:
        st.divider()
        rows = exporting.estimate_row(settings, request)
        if rows == 0:
            st.info("Empty selection: no rows match these filters.", icon=":material/search_off:")
        if st.button("Start export", type="primary", disabled=rows == 0):
            exporting.start(settings, user, request)
            st.rerun()
        with st.expander("Copy as CLI command"):
            st.code(widgets.cli_command(request, user=user.username), language="bash")
