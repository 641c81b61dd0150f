"""Schedules: saved exports that run daily or weekly and are emailed; users manage their own."""

import streamlit as st

from nano_export import mail, scheduler, schedules
from nano_export.cadence import CADENCES, WEEKDAYS, make_timing
from nano_export.datasets import DATASETS
from nano_export.models import ALLOWED_LEVELS, ExportRequest, FilterSpec
from nano_export.ui import context, session, sidebar, widgets

user = session.require_user()
settings = context.app_settings()
engine = context.app_engine(settings)

st.title("Schedules")
st.caption(
    "Everyone's schedules (admin view)."
    if user.is_admin
    else "Your saved exports that run on a cadence and are emailed."
)

if flash := st.session_state.pop("nx_sched_flash", None):
    st.success(flash)

with widgets.friendly_errors():
    # Whether a schedule can do its job, before anyone relies on it.
    if not mail.enabled(settings):
        st.warning(
            "Email is not set up on this server: schedules still run and their files appear in "
            "History, but nobody is emailed. An admin sets the mail server (the SMTP settings).",
            icon=":material/mail_lock:",
        )
    late = scheduler.overdue(engine)
    if scheduler.embedded_running(settings):
        st.caption("Due schedules run in this dashboard's own process (checked every 30 s).")
    elif late:
        st.warning(
            f"No scheduler seems to be running: {len(late)} schedule(s) are overdue "
            f"({', '.join(s.name for s in late[:5])}). Schedules run while the dashboard's "
            "embedded worker, `nano-export scheduler` or a worker is running.",
            icon=":material/schedule:",
        )
    else:
        st.info(
            "This dashboard does not run schedules itself: they run only while "
            "`nano-export scheduler` or a worker is running.",
            icon=":material/schedule:",
        )
    items = schedules.list_schedules(engine, user=None if user.is_admin else user.username)
    if items:
        st.dataframe(
            [
                {
                    "name": s.name,
                    "owner": s.owner,
                    "dataset": s.request.dataset,
                    "privacy": s.request.privacy,
                    "when": s.timing.describe(),
                    "recipients": ", ".join(s.recipients),
                    "state": "paused" if s.paused else "active",
                    "next run (UTC)": s.next_run_at,
                    "last run (UTC)": s.last_run_at,
                    "last export": scheduler.export_link(settings, s.last_export_id)
                    if s.last_export_id
                    else None,
                }
                for s in items
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "next run (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                "last run (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                "last export": st.column_config.LinkColumn(display_text="open"),
            },
        )
        by_name = {s.name: s for s in items}
        chosen = by_name[st.selectbox("Schedule", list(by_name), key="nx_sched_pick")]
        cols = st.columns(3)
        label, key, icon = (
            ("Resume", "nx_sched_resume", ":material/play_arrow:")
            if chosen.paused
            else ("Pause", "nx_sched_pause", ":material/pause:")
        )
        if cols[0].button(label, key=key, icon=icon):
            schedules.set_paused(
                engine,
                name=chosen.name,
                paused=not chosen.paused,
                interface="dashboard",
                actor=user.username,
                role=user.role,
            )
            st.rerun()
        if cols[1].button("Run now", key="nx_sched_run", icon=":material/rocket_launch:"):
            with st.spinner(f"Running {chosen.name}…"):
                result = scheduler.run_now(
                    engine, settings, name=chosen.name, actor=user.username, role=user.role
                )
            if result.error or result.export is None:
                st.error(f"The run failed: {widgets.plain(result.error)}")
            else:
                st.success(
                    f"Exported {widgets.fmt_int(result.export.rows_done)} rows; "
                    f"email {result.email}."
                )
        if cols[2].button("Remove", key="nx_sched_remove", icon=":material/delete:"):
            schedules.remove_schedule(
                engine, name=chosen.name, interface="dashboard", actor=user.username, role=user.role
            )
            st.rerun()
    else:
        st.info("No schedules yet — create one below.", icon=":material/inbox:")

    st.subheader("New schedule")
    current = st.session_state.get("export_request")
    filter_error = st.session_state.get(sidebar.FILTER_ERROR)
    unavailable = None
    if filter_error:
        unavailable = f"the sidebar filter is invalid ({filter_error}) — fix it on the Export page"
        current = None
    elif not isinstance(current, ExportRequest):
        unavailable = "no export is set up yet — open the Export page first"
    use_current = st.toggle(
        "Use the export currently set up on the Export page",
        value=unavailable is None,
        disabled=unavailable is not None,
        key="nx_sched_use",
    )
    if unavailable:
        st.caption(f"Unavailable: {unavailable}. Or fill in the form below.")
    if use_current and isinstance(current, ExportRequest):
        request: ExportRequest | None = current
        st.caption(f"{current.dataset} · privacy {current.privacy} · format {current.format}")
    else:
        request = None
    with st.form("nx_sched_new"):
        name = st.text_input("Name", key="nx_sched_name")
        if request is None:
            names = sorted(DATASETS)
            dataset = st.selectbox(
                "Dataset",
                names,
                index=names.index(sidebar.DEFAULT_DATASET),
                key="nx_sched_dataset",
            )
            levels = ALLOWED_LEVELS[user.role]
            # Standard by default, as on the Export page: an email must not carry unmasked text
            # unless someone chose it.
            level = st.radio(
                "Privacy",
                levels,
                index=levels.index("standard") if "standard" in levels else 0,
                horizontal=True,
                key="nx_sched_privacy",
            )
            where = st.text_input("Where (optional)", key="nx_sched_where")
        every = st.radio("Every", CADENCES, horizontal=True, key="nx_sched_every")
        weekday = st.selectbox("Weekday (weekly)", WEEKDAYS, key="nx_sched_weekday")
        at = st.text_input("At (HH:MM)", value="08:00", key="nx_sched_at")
        tz = st.text_input("Time zone", value="UTC", key="nx_sched_tz")
        emails = st.text_area("Email recipients (one per line)", key="nx_sched_emails")
        submitted = st.form_submit_button("Create schedule", type="primary", key="nx_sched_create")
    if submitted:
        if request is None:
            request = ExportRequest(
                dataset=dataset,
                filters=FilterSpec(where=where.strip() or None),
                privacy=level,
                format="csv.gz",
            )
        sched = schedules.create_schedule(
            engine,
            settings,
            name=name,
            owner=user.username,
            request=request,
            timing=make_timing(every, at=at, tz=tz, weekday=weekday if every == "weekly" else None),
            recipients=[e for e in emails.replace(",", "\n").splitlines() if e.strip()],
            interface="dashboard",
            actor=user.username,
        )
        flash = f"Schedule {sched.name!r} created; next run {sched.next_run_at:%Y-%m-%d %H:%M} UTC."
        if not mail.enabled(settings):
            flash += " Email is not set up, so its runs will not be emailed."
        st.session_state["nx_sched_flash"] = flash
        st.rerun()
