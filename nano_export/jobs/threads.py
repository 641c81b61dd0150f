"""The thread runner: an export runs in a background thread of the process that accepted it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine

from nano_export.exporter import ExportPlan
from nano_export.jobs.running import ProgressHook, run_job
from nano_export.settings import Settings


def start_thread(
    engine: Engine,
    settings: Settings,
    export_id: str,
    plan: ExportPlan,
    path: Path,
    on_progress: ProgressHook | None,
) -> threading.Thread:
    """Run the export in a daemon thread of this process; returns the started thread."""
    thread = threading.Thread(
        target=run_job,
        args=(engine, settings, export_id, plan, path, on_progress),
        name=f"export-{export_id[:8]}",
        daemon=True,
    )
    thread.start()
    return thread
