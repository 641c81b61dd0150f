"""The Streamlit script of the dashboard: login gate, then navigation by role.

``app.py`` serves this script together with the HTTP API; ``streamlit run dashboard.py`` also works.

Every page has a fixed URL path (``explore`` is the root). While logged out, each of those paths is
registered as a hidden page that only renders the login form, so a deep link such as
``/export?provider=openai`` shows the login (no "page not found") and keeps its URL; after login the
real pages register the same paths (a page's identity is its URL path) and the link opens its page.
"""

from pathlib import Path

import streamlit as st

from nano_export.ui import context, session, widgets

PAGES = Path(__file__).parent / "app_pages"
#: url path (= file stem), title, icon, admins only
PAGE_DEFS: list[tuple[str, str, str, bool]] = [
    ("explore", "Explore", ":material/insights:", False),
    ("rows", "Rows", ":material/table_rows:", False),
    ("export", "Export", ":material/download:", False),
    ("history", "History", ":material/history:", False),
    ("schedules", "Schedules", ":material/schedule:", False),
    ("views", "Views", ":material/bookmarks:", False),
    ("dictionary", "Dictionary", ":material/menu_book:", False),
    ("audit", "Audit", ":material/shield:", True),
]

st.set_page_config(
    page_title="nano-export",
    page_icon=":material/inventory_2:",
    layout="wide",
    # The menu (⋮) holds this and, with the two themes of the config, the light/dark switch.
    menu_items={"About": "nano-export: explore and export LLM agent evaluation runs, masked."},
)
widgets.page_style()
settings = context.app_settings()
context.app_engine(settings)  # schema and signing secret first: the login cookie needs the secret
authenticator = session.make_authenticator(settings)
user = session.current_user(authenticator, settings)
session.set_page_user(user)


def _login() -> None:
    session.login_page(authenticator, settings)


if user is None:
    # Logged out: every page URL renders the login form, and nothing else.
    stand_ins = [
        st.Page(_login, title="Log in", icon=":material/lock:", url_path=path, default=i == 0)
        for i, (path, _title, _icon, _admin) in enumerate(PAGE_DEFS)
    ]
    st.navigation(stand_ins, position="hidden").run()
else:
    session.restore_query()
    pages = {
        path: st.Page(PAGES / f"{path}.py", title=title, icon=icon, default=path == "explore")
        for path, title, icon, admin in PAGE_DEFS
        if (not admin or user.is_admin) and (PAGES / f"{path}.py").exists()
    }
    hidden = []
    for path, title, _icon, admin in PAGE_DEFS:
        if admin and not user.is_admin:
            # A link to an admin page says why it is not shown (not "page not found").
            def _admins_only(title: str = title, role: str = user.role) -> None:
                st.title(title)
                st.error(
                    f"The {title} page is for admins, and your role is {role}. "
                    "Ask an admin if you need it.",
                    icon=":material/lock:",
                )
                st.page_link(pages["explore"], label="Go to Explore", icon=":material/insights:")

            hidden.append(st.Page(_admins_only, title=title, url_path=path, visibility="hidden"))
    current = st.navigation([*pages.values(), *hidden])
    with st.sidebar:
        st.markdown(f"**{user.name}** · `{user.role}`")
        if session.logout_button(authenticator, settings, user):
            st.success("You have been logged out.")
            st.button("Log in again", on_click=lambda: None)
            st.stop()
        st.divider()
    current.run()
