"""nano-export: self-service export of LLM agent evaluation data.

``nano_export.connect(url, user=...)`` gives a notebook client (count, preview, export) over the
same engine as the dashboard, the CLI and the HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from nano_export.notebook import Client, connect

__all__ = ["Client", "__version__", "connect"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import nano_export` stays cheap for the CLI and the server.
    if name in ("connect", "Client"):
        from nano_export import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'nano_export' has no attribute {name!r}")
