"""Domain exceptions; each interface maps them to a page error, an exit code or a status."""

from __future__ import annotations


class NanoExportError(Exception):
    """Base of every error nano-export reports to a user."""

    exit_code = 1
    http_status = 500


class BadInput(NanoExportError):
    """Input that cannot be used: a bad file, option or request."""

    exit_code = 2
    http_status = 422


class InvalidSetting(BadInput):
    """A setting has a value that cannot be used; the message names the setting."""


class ImportFailed(BadInput):
    """A source file could not be imported; nothing of it was stored."""


class InvalidFilter(BadInput):
    """A filter or ``where`` expression is invalid; the message says what and where."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at position {position})")
        self.position = position


class QueryTimeout(BadInput):
    """An interactive query ran longer than ``NANO_EXPORT_QUERY_TIMEOUT_S`` and was stopped."""

    def __init__(self, seconds: int) -> None:
        super().__init__(
            f"the query ran longer than {seconds} s (NANO_EXPORT_QUERY_TIMEOUT_S) and was "
            "stopped; narrow the filters (fewer models, a shorter time range, a simpler where)"
        )
        self.seconds = seconds


class UnknownDataset(BadInput):
    """No dataset of that name."""


class NotReady(BadInput):
    """The export exists but has no file to offer (still running, failed, cancelled or expired)."""

    http_status = 409


class ExportCancelled(NanoExportError):
    """An export was cancelled while running."""

    exit_code = 1
    http_status = 409


class NotFound(NanoExportError):
    """A record does not exist, or is not visible to the caller."""

    exit_code = 2
    http_status = 404


class AuthenticationFailed(NanoExportError):
    """Credentials are missing or invalid."""

    exit_code = 3
    http_status = 401


class PermissionDenied(NanoExportError):
    """The caller's role does not allow the action."""

    exit_code = 3
    http_status = 403


class ExportLimitReached(NanoExportError):
    """The user already runs the maximum number of concurrent exports."""

    exit_code = 4
    http_status = 429


class ExportFailed(NanoExportError):
    """An export did not complete; its file was removed."""

    exit_code = 1
    http_status = 500
