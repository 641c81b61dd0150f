"""Server entry: ``streamlit run app.py`` serves the dashboard and the HTTP API on one port."""

import streamlit as st

from nano_export import api

app = st.App("dashboard.py", routes=api.routes(), middleware=api.middleware())
