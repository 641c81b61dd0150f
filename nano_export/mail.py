"""Email for scheduled exports: compose one message per run, send it over SMTP with retries.

Standard library only (``smtplib``, ``email.message.EmailMessage``). The message holds no data rows:
a summary, a link to the export in the dashboard, and the export itself attached when it is small
enough: in its own format, gzipped when that helps (CSV and JSON Lines; xlsx, Parquet and ``.gz``
files are compressed already). Whoever sends decides what to audit; this module only reports how
it went.
"""

from __future__ import annotations

import gzip
import html
import io
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Final

from nano_export.errors import NanoExportError
from nano_export.formats import FORMATS, Format
from nano_export.settings import Settings

log = logging.getLogger(__name__)

#: Waits between attempts: four tries in all, 1 s, 2 s and 4 s apart.
RETRY_DELAYS: Final[tuple[float, ...]] = (1.0, 2.0, 4.0)
SMTP_TIMEOUT_S: Final = 30.0


class MailFailed(NanoExportError):
    """An email could not be delivered to the mail server after every retry."""

    exit_code = 1
    http_status = 502

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class ExportMail:
    """What an export email says; composed into a message by ``compose``."""

    schedule: str
    dataset: str
    rows: int
    summary: str
    link: str
    file_path: Path | None
    file_name: str
    note: str | None = None


def enabled(settings: Settings) -> bool:
    """Whether email is configured (an empty ``SMTP_HOST`` disables it)."""
    return bool(settings.smtp_host.strip())


def gzip_within(path: Path, limit_bytes: int) -> bytes | None:
    """The file gzip-compressed (as-is when it already is gzip), or None when over the limit."""
    if path.name.endswith(".gz"):
        return as_is_within(path, limit_bytes)
    buffer = io.BytesIO()
    with path.open("rb") as src, gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            if buffer.tell() >= limit_bytes:
                return None
    data = buffer.getvalue()
    return data if len(data) < limit_bytes else None


def as_is_within(path: Path, limit_bytes: int) -> bytes | None:
    """The file's bytes, or None when it is over the limit."""
    if path.stat().st_size >= limit_bytes:
        return None
    return path.read_bytes()


def _attachment_format(file_name: str) -> Format | None:
    """The export format a file name ends with (the longest match), if any."""
    matches = [f for name, f in FORMATS.items() if file_name.endswith(f".{name}")]
    return max(matches, key=lambda f: len(f.name)) if matches else None


def compose(
    content: ExportMail, *, sender: str, recipients: Sequence[str], attach_max_mb: float
) -> EmailMessage:
    """A plain-text + HTML message about one export, with the file when under the limit.

    The file keeps its format; CSV and JSON Lines are gzipped on the way (``.gz`` added to the
    name), compressed formats (xlsx, Parquet, ``.gz``) go as they are.
    """
    fmt = _attachment_format(content.file_name)
    keep = fmt is not None and fmt.compressed
    attachment: bytes | None = None
    if content.file_path is not None and content.file_path.exists() and attach_max_mb > 0:
        limit = int(attach_max_mb * 1024 * 1024)
        attachment = (as_is_within if keep else gzip_within)(content.file_path, limit)
    gz_name = (
        content.file_name
        if keep or content.file_name.endswith(".gz")
        else f"{content.file_name}.gz"
    )
    maintype, subtype = (
        fmt.content_type.split(";")[0].split("/", 1) if keep and fmt else ("application", "gzip")
    )
    noun = "row" if content.rows == 1 else "rows"
    if attachment is not None:
        file_line = f"The export is attached as {gz_name}."
    elif content.file_path is None:
        file_line = "The export has no file to attach."
    else:
        file_line = f"The export is larger than {attach_max_mb:g} MB: download it from the link."

    note_line = f"Note: {content.note}\n" if content.note else ""
    e = html.escape
    note_row = (
        f"<tr><th align='left'>Note</th><td>{e(content.note)}</td></tr>" if content.note else ""
    )
    msg = EmailMessage()
    msg["Subject"] = f"[nano-export] {content.schedule}: {content.rows:,} {noun}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="nano-export")
    msg.set_content(
        f"Scheduled export {content.schedule!r} is ready.\n\n"
        f"Dataset: {content.dataset}\n"
        f"Rows: {content.rows:,}\n"
        f"Filters: {content.summary}\n"
        f"{note_line}\n"
        f"Open it in the dashboard: {content.link}\n\n"
        f"{file_line}\n"
    )
    msg.add_alternative(
        "<html><body>"
        f"<p>Scheduled export <strong>{e(content.schedule)}</strong> is ready.</p>"
        "<table>"
        f"<tr><th align='left'>Dataset</th><td>{e(content.dataset)}</td></tr>"
        f"<tr><th align='left'>Rows</th><td>{content.rows:,}</td></tr>"
        f"<tr><th align='left'>Filters</th><td>{e(content.summary)}</td></tr>"
        f"{note_row}"
        "</table>"
        f'<p><a href="{e(content.link, quote=True)}">Open the export in the dashboard</a></p>'
        f"<p>{e(file_line)}</p>"
        "</body></html>",
        subtype="html",
    )
    if attachment is not None:
        msg.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=gz_name)
    return msg


def _transient(exc: BaseException) -> bool:
    # 5xx answers (bad recipient, bad login) will not change on retry; connections and 4xx may.
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    return isinstance(exc, (OSError, smtplib.SMTPException))


def _deliver(settings: Settings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())  # verifies the certificate
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def send(
    settings: Settings,
    message: EmailMessage,
    *,
    delays: Sequence[float] = RETRY_DELAYS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send ``message``; retry transient failures after each of ``delays``. Returns attempts used.

    Raises MailFailed (with the attempts made and the last reason) when every attempt failed.
    """
    if not enabled(settings):
        raise MailFailed("email is disabled: NANO_EXPORT_SMTP_HOST is empty", attempts=0)
    attempts = 0
    while True:
        attempts += 1
        try:
            _deliver(settings, message)
        except (OSError, smtplib.SMTPException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            retry = _transient(exc) and attempts <= len(delays)
            log.warning(
                "email send failed",
                extra={
                    "smtp_host": settings.smtp_host,
                    "smtp_port": settings.smtp_port,
                    "attempt": attempts,
                    "retry": retry,
                    "reason": reason,
                },
            )
            if not retry:
                raise MailFailed(
                    f"could not send email via {settings.smtp_host}:{settings.smtp_port} "
                    f"after {attempts} attempt(s): {reason}",
                    attempts=attempts,
                ) from exc
            sleep(delays[attempts - 1])
            continue
        log.info(
            "email sent",
            extra={"to": message["To"], "subject": message["Subject"], "attempt": attempts},
        )
        return attempts


__all__ = ["ExportMail", "MailFailed", "as_is_within", "compose", "enabled", "gzip_within", "send"]
