"""Entry point of the dashboard: ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="nano-export", page_icon="📦", layout="wide")
st.title("nano-export")
st.write("The dashboard is being built. Use the `nano-export` command line meanwhile.")
