"""Rows: every row of the selection a page at a time, sorted and searched; one trace."""

import streamlit as st

from nano_export import filters, rows
from nano_export.ui import context, data, session, sidebar, trace, widgets

user = session.require_user()
settings = context.app_settings()
db_url = settings.db_url
K_SEARCH, K_SORT, K_ORDER, K_PAGE = (
    "nx_rows_search",
    "nx_rows_sort",
    "nx_rows_order",
    "nx_rows_page",
)
K_OPEN, K_SIG = "nx_rows_open", "_nx_rows_sig"
ORDERS = ("Ascending", "Descending")


def _step(delta: int) -> None:
    st.session_state[K_PAGE] = max(1, int(st.session_state.get(K_PAGE) or 1) + delta)


st.title("Rows")
with widgets.friendly_errors():
    selection = sidebar.filter_sidebar(db_url)
    sidebar.page_notices(selection)
    if selection.spec is None:
        st.stop()
    level = user.top_level
    sortable = rows.SORTABLE[selection.dataset]
    if st.session_state.get(K_SORT) not in sortable:
        st.session_state[K_SORT] = sortable[0]
    st.session_state.setdefault(K_ORDER, ORDERS[0])
    top = st.columns([3, 2, 2])
    search = top[0].text_input(
        "Search text",
        key=K_SEARCH,
        placeholder="a word or phrase, e.g. Washington",
        help="Rows where any text column shown at your privacy level contains this, ignoring "
        "case. It is added to the filter as a where clause, so the export can repeat it.",
    )
    sort = top[1].selectbox(
        "Sort by", sortable, key=K_SORT, help="Columns with an index, so every page is quick."
    )
    order = top[2].segmented_control("Order", ORDERS, key=K_ORDER) or ORDERS[0]
    # A new selection, search or order starts again at page 1.
    signature = f"{selection.dataset}|{selection.spec.to_json()}|{search}|{sort}|{order}"
    if st.session_state.get(K_SIG) != signature:
        st.session_state[K_SIG] = signature
        st.session_state[K_PAGE] = 1
    found = data.rows_page(
        db_url,
        selection.dataset,
        selection.spec.to_json(),
        level,
        settings.resolved_secret(),
        page=int(st.session_state.get(K_PAGE) or 1),
        sort=sort,
        descending=order == "Descending",
        search=search.strip() or None,
    )
    st.session_state[K_PAGE] = found.page
    last = found.first + len(found.rows) - 1 if len(found.rows) else 0
    st.caption(
        f"**{selection.dataset}** · {filters.describe(found.spec)} — rows "
        f"{widgets.fmt_int(found.first)}–{widgets.fmt_int(last)} of "
        f"{widgets.fmt_int(found.total)} at privacy level **{level}** (redacted as in the file) "
        "· times in UTC"
    )
    nav = st.columns([1, 1, 2, 6])
    nav[0].button(
        "Previous", key="nx_rows_prev", on_click=_step, args=(-1,), disabled=found.page <= 1
    )
    nav[1].button(
        "Next", key="nx_rows_next", on_click=_step, args=(1,), disabled=found.page >= found.pages
    )
    nav[2].number_input(
        f"Page (of {found.pages:,})",
        min_value=1,
        max_value=found.pages,
        step=1,
        key=K_PAGE,
    )
    if found.rows.empty:
        st.info("No rows match these filters and this search.", icon=":material/search_off:")
        st.stop()
    st.dataframe(
        widgets.display_rows(found.rows),
        hide_index=True,
        width="stretch",
        height=420,
        column_config=widgets.column_help(selection.dataset),
    )

    st.subheader("Execution detail")
    ids = [int(i) for i in dict.fromkeys(found.rows["execution_id"].dropna())]
    if st.session_state.get(K_OPEN) not in ids:
        st.session_state.pop(K_OPEN, None)
    opened = st.selectbox(
        "Open an execution of this page",
        ids,
        index=None,
        key=K_OPEN,
        placeholder="Choose an execution id",
        help="Its prompt, response, grades, metrics and agent interactions in order.",
    )
    if opened is not None:
        detail = data.execution_detail(db_url, int(opened), level, settings.resolved_secret())
        trace.show_execution(detail)
