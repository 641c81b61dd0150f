"""Streamlit helpers for the dashboard: login, filter sidebar, cached queries, charts, widgets.

Only the dashboard imports this package; the rest of ``nano_export`` never imports Streamlit.
"""
