"""Explore: headline numbers, charts and redacted sample rows of the filtered selection."""

import streamlit as st

from nano_export import filters
from nano_export.ui import charts, context, data, session, sidebar, tables, widgets

user = session.require_user()
settings = context.app_settings()
db_url = settings.db_url

st.title("Explore")
with widgets.friendly_errors():
    selection = sidebar.filter_sidebar(db_url)
    sidebar.page_notices(selection)
    if selection.spec is None:
        st.stop()
    spec_json = selection.spec.to_json()
    st.caption(f"**{selection.dataset}** · {widgets.literal(filters.describe(selection.spec))}")
    version = data.data_version(db_url)  # read once: every figure below is of this version
    overview = data.overview(db_url, selection.dataset, spec_json, version)
    summary = overview.summary

    cols = st.columns(4)
    unit = "Interactions" if selection.dataset == "agent-interactions" else "Runs"
    cols[0].metric(unit, widgets.fmt_int(summary.rows))
    rate = summary.success_rate
    cols[1].metric("Success rate", "—" if rate is None else f"{rate:.1%}")
    cols[2].metric("Total cost", widgets.fmt_usd(summary.total_cost))
    latency = summary.median_latency
    cols[3].metric("Median latency", "—" if latency is None else f"{latency:.2f} s")

    if summary.rows == 0:
        st.info(
            f"No {unit.lower()} match these filters — widen the selection in the sidebar.",
            icon=":material/search_off:",
        )
        st.stop()

    per_model = overview.by_model
    cfg = charts.CONFIG
    left, right = st.columns(2)
    with left:
        st.subheader("Success rate by model")
        rates = per_model["success_rate"].dropna()
        if rates.empty:
            st.info("This dataset has no success column.", icon=":material/info:")
        elif selection.spec.success is not None:
            shown = "Succeeded" if selection.spec.success else "Failed"
            same = "100%" if selection.spec.success else "0%"
            st.info(
                f"With Outcome = {shown} every model's success rate is {same} — set Outcome "
                "to Any in the sidebar to compare models.",
                icon=":material/info:",
            )
        else:
            fig = data.chart("success_rate", db_url, selection.dataset, spec_json, version)
            st.plotly_chart(fig, width="stretch", config=cfg)
    with right:
        st.subheader("Latency by model")
        st.caption("Darker: a larger share of the model's runs; hover for counts.")
        buckets = data.latency_buckets(db_url, selection.dataset, spec_json, version)
        if buckets.empty:
            st.info("No latencies in this selection.", icon=":material/info:")
        else:
            fig = data.chart("latency", db_url, selection.dataset, spec_json, version)
            st.plotly_chart(fig, width="stretch", config=cfg)
    left, right = st.columns(2)
    with left:
        st.subheader("Cost per run")
        if per_model["cost_per_run_usd"].dropna().empty:
            st.info(
                "This dataset has no cost column: costs are per execution, in the "
                "evaluation results and performance metrics datasets.",
                icon=":material/info:",
            )
        else:
            fig = data.chart("cost_per_run", db_url, selection.dataset, spec_json, version)
            st.plotly_chart(fig, width="stretch", config=cfg)
    with right:
        st.subheader(f"{unit} over time")
        st.caption("Per day, week or month in UTC.")
        fig = data.chart("runs_over_time", db_url, selection.dataset, spec_json, version)
        st.plotly_chart(fig, width="stretch", config=cfg)

    level = user.top_level
    st.subheader("Sample rows")
    st.caption(
        f"First 50 matching rows at privacy level **{level}** — credentials are always "
        "redacted; the export uses the same redaction."
    )
    secret = settings.resolved_secret()
    sample = data.preview(db_url, selection.dataset, spec_json, level, secret, version=version)
    st.dataframe(tables.blank_nulls(sample), width="stretch", hide_index=True, height=360)
    st.caption(":material/link: The address bar holds these filters: copy it to share this view.")
