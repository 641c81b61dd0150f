"""The Streamlit script of the dashboard: login gate, then navigation by role.

``app.py`` serves this script together with the HTTP API; ``streamlit run dashboard.py`` also works.
"""

from pathlib import Path

import streamlit as st

from nano_export.ui import context, session, widgets

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="nano-export", page_icon="📦", layout="wide")
widgets.page_style()
settings = context.app_settings()
authenticator = session.make_authenticator(settings)
user = session.current_user(authenticator, settings)
session.set_page_user(user)

if user is None:
    # Logged out: the login page is the only page, whatever the URL asks for.
    login = st.Page(
        lambda: session.login_page(authenticator, settings),
        title="Log in",
        icon=":material/lock:",
        url_path="login",
        default=True,
    )
    st.navigation([login], position="hidden").run()
else:
    session.restore_query()
    pages = [
        st.Page(PAGES / "explore.py", title="Explore", icon=":material/insights:", default=True),
        st.Page(PAGES / "export.py", title="Export", icon=":material/download:"),
        st.Page(PAGES / "history.py", title="History", icon=":material/history:"),
    ]
    if (PAGES / "schedules.py").exists():
        pages.append(st.Page(PAGES / "schedules.py", title="Schedules", icon=":material/schedule:"))
    if user.is_admin:
        pages.append(st.Page(PAGES / "audit.py", title="Audit", icon=":material/shield:"))
    current = st.navigation(pages)
    with st.sidebar:
        st.markdown(f"**{user.name}** · `{user.role}`")
        if session.logout_button(authenticator, settings, user):
            st.success("You have been logged out.")
            st.button("Log in again", on_click=lambda: None)
            st.stop()
        st.divider()
    context.app_engine(settings)
    current.run()
