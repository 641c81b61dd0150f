"""Audit (admins): who did what, filtered by actor, event and date; downloadable as CSV."""

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from nano_export import audit
from nano_export.ui import context, session, tables, widgets

user = session.require_user()
if not user.is_admin:
    st.error("The audit log is for admins.", icon=":material/lock:")
    st.stop()
settings = context.app_settings()
engine = context.app_engine(settings)

st.title("Audit log")
cols = st.columns([1, 1, 1, 1])
actor = cols[0].text_input("Actor", key="nx_audit_actor").strip().lower() or None
event = cols[1].selectbox("Event", ["(all)", *sorted(audit.EVENTS)], key="nx_audit_event")
since = cols[2].date_input("Since (UTC)", value=None, key="nx_audit_since", format="YYYY-MM-DD")
until = cols[3].date_input("Until (UTC)", value=None, key="nx_audit_until", format="YYYY-MM-DD")

with widgets.friendly_errors():
    with engine.connect() as conn:
        events = audit.list_events(
            conn,
            actor=actor,
            event=None if event == "(all)" else event,
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        )
    frame = tables.audit_frame(events)
    st.caption(f"{len(frame):,} events, newest first.")
    st.dataframe(
        tables.blank_nulls(frame),
        hide_index=True,
        width="stretch",
        column_config={
            "at": st.column_config.DatetimeColumn("At (UTC)", format="YYYY-MM-DD HH:mm:ss")
        },
    )
    st.download_button(
        "Download as CSV",
        tables.audit_csv(frame),
        file_name="nano-export-audit.csv",
        mime="text/csv",
        icon=":material/download:",
    )
