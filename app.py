"""Server entry: ``streamlit run app.py`` serves the dashboard and the HTTP API on one port.

On PostgreSQL the process also runs an embedded export worker, unless
``NANO_EXPORT_EMBEDDED_WORKER=false`` (web-only replicas beside ``nano-export worker`` processes).
"""

import logging

import streamlit as st

from nano_export import api, worker
from nano_export.errors import InvalidSetting
from nano_export.settings import get_settings

try:
    worker.start_embedded(get_settings())
except InvalidSetting:  # the pages show the bad setting to the user
    logging.getLogger(__name__).exception("embedded worker not started")

app = st.App("dashboard.py", routes=api.routes(), middleware=api.middleware())
