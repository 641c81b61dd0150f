"""Settings and engine of the running dashboard, plus once-per-process startup work."""

from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy import Engine

from nano_export import columnar, jobs, scheduler
from nano_export.bootstrap import initialize
from nano_export.db import get_engine
from nano_export.settings import Settings, get_settings

log = logging.getLogger(__name__)


def app_settings() -> Settings:
    """Settings from the environment (cheap; read per run so tests can change them)."""
    return get_settings()


def app_engine(settings: Settings) -> Engine:
    """The process-wide engine of the configured database, prepared once."""
    engine = get_engine(settings.db_url)
    _startup(settings.db_url, str(settings.export_dir))
    return engine


@st.cache_resource(show_spinner=False)
def _startup(db_url: str, export_dir: str) -> bool:
    # Once per database and process: make sure the schema exists, then prune old exports.
    settings = get_settings(database_url=db_url, export_dir=export_dir)
    # One thread per process runs due schedules here unless separate workers do (the setting).
    try:
        initialize(settings)
        removed = jobs.prune_exports(get_engine(db_url), settings)
        log.info("dashboard started", extra={"pruned_exports": removed})
        scheduler.start_embedded(settings)
        # Explore's in-memory columns load while the first visitor logs in.
        columnar.warm(get_engine(db_url))
    except Exception:  # the pages report database errors themselves
        log.exception("dashboard startup maintenance failed")
    return True
