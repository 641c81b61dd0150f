"""The export lifecycle, shared by every process through the ``exports`` table.

An export is a row: queued → running → succeeded | failed | cancelled, and later expired. Its job
writes progress and a heartbeat to that row, so any process can follow it, cancel it, or — when the
heartbeat stops — mark it failed. The package, by concept:

- ``records``: reading rows as records, finishing them, auditing what happens to them.
- ``limits``: the per-user concurrency slots, refusals (``export.denied``), reaping dead exports.
- ``lifecycle``: accepting an export (``submit_export``) and cancelling one.
- ``running``: the job body that runs one export to its end, and its heartbeat.
- ``threads``: the runner that runs a job in a background thread of the accepting process (SQLite,
  and on any database an export the caller waits for).
- ``queue``: the runner on PostgreSQL — a procrastinate job that any worker process runs, run again
  from the start when its worker stops sending heartbeats.
- ``files``: where files live, serving them for download, retention.

Callers use the names re-exported here (``from nano_export import jobs; jobs.submit_export``).
"""

from nano_export.jobs.files import downloadable, open_download, prune_exports
from nano_export.jobs.lifecycle import cancel_export, submit_export
from nano_export.jobs.limits import check_privacy, deny, reap_stale
from nano_export.jobs.records import get_export, list_exports, wait_for
from nano_export.jobs.running import ProgressHook

__all__ = [
    "ProgressHook",
    "cancel_export",
    "check_privacy",
    "deny",
    "downloadable",
    "get_export",
    "list_exports",
    "open_download",
    "prune_exports",
    "reap_stale",
    "submit_export",
    "wait_for",
]
