"""Export emails: composition, gzip attachment under the size limit, delivery and retries."""

from __future__ import annotations

import gzip
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult
from smtp_server import Inbox, free_port, smtp_server

from nano_export import mail
from nano_export.settings import Settings, get_settings


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


def mail_settings(tmp_path: Path, port: int, **extra: object) -> Settings:
    return get_settings(
        data_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="reports@example.org",
        base_url="http://dash.example.org/",
        **extra,
    )


def csv_file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "evaluation-results-abcd1234.csv"
    lines = ["execution_id,provider"] + [f"{i},openai" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def content(path: Path | None, rows: int = 3) -> mail.ExportMail:
    return mail.ExportMail(
        schedule="weekly <openai>",
        dataset="evaluation-results",
        rows=rows,
        summary="provider in (openai)",
        link="http://dash.example.org/history?export=abc",
        file_path=path,
        file_name="evaluation-results-abcd1234.csv",
    )


def test_plain_csv_is_gzipped_and_attached_with_text_and_html_bodies(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 3)
    msg = mail.compose(content(path), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    assert msg["Subject"] == "[nano-export] weekly <openai>: 3 rows"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "http://dash.example.org/history?export=abc" in text
    assert "provider in (openai)" in text
    assert 'href="http://dash.example.org/history?export=abc"' in page
    assert "weekly &lt;openai&gt;" in page
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "evaluation-results-abcd1234.csv.gz"
    assert gzip.decompress(attachment.get_content()) == path.read_bytes()


def test_gzip_file_over_the_limit_is_not_attached_and_the_body_says_so(tmp_path: Path) -> None:
    path = tmp_path / "big.csv.gz"
    path.write_bytes(b"\x1f\x8b" + b"x" * 2048)
    msg = mail.compose(
        content(path), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1 / 1024
    )
    assert list(msg.iter_attachments()) == []
    assert "larger than" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_body_holds_no_data_rows(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_text("execution_id,prompt\n1,TOP-SECRET-PROMPT\n", encoding="utf-8")
    msg = mail.compose(content(path), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    for part in ("plain", "html"):
        body = msg.get_body((part,)).get_content()  # type: ignore[union-attr]
        assert "TOP-SECRET-PROMPT" not in body


def test_send_delivers_to_every_recipient_on_a_real_smtp_server(
    tmp_path: Path, inbox: Inbox
) -> None:
    settings = mail_settings(tmp_path, inbox.port)
    msg = mail.compose(
        content(csv_file(tmp_path, 2), rows=2),
        sender=settings.smtp_from,
        recipients=["ann@example.org", "bob@example.org"],
        attach_max_mb=1,
    )
    assert mail.send(settings, msg, sleep=lambda _s: None) == 1
    assert inbox.recipients == [["ann@example.org", "bob@example.org"]]
    (got,) = inbox.messages
    assert got["Subject"] == "[nano-export] weekly <openai>: 2 rows"
    (attachment,) = list(got.iter_attachments())
    assert gzip.decompress(attachment.get_content()).decode().count("\n") == 3


def test_refused_connection_is_retried_with_backoff_then_fails(tmp_path: Path) -> None:
    settings = mail_settings(tmp_path, free_port())
    waits: list[float] = []
    msg = mail.compose(content(None), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    with pytest.raises(mail.MailFailed, match=r"after 4 attempt\(s\).*ConnectionRefused") as info:
        mail.send(settings, msg, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0]
    assert info.value.attempts == 4


def test_send_retries_until_the_server_comes_up(tmp_path: Path) -> None:
    with smtp_server() as box:
        port = box.port
        settings = mail_settings(tmp_path, port)
    # The server is stopped now; start another on the same port during the first wait.
    servers: list[object] = []

    def start_server(_seconds: float) -> None:
        from aiosmtpd.controller import Controller

        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)

    msg = mail.compose(content(None), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    try:
        assert mail.send(settings, msg, sleep=start_server) == 2
    finally:
        for controller in servers:
            controller.stop()  # type: ignore[attr-defined]
    assert len(box.messages) == 1


def test_send_with_email_disabled_fails_without_connecting(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path, smtp_host="")
    msg = mail.compose(content(None), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    assert not mail.enabled(settings)
    with pytest.raises(mail.MailFailed, match="SMTP_HOST is empty"):
        mail.send(settings, msg)


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_starttls_with_a_verified_certificate_then_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust this certificate only
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(_server, _session, _envelope, _mechanism, data):  # type: ignore[no-untyped-def]
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret", handled=False)

    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": authenticator}
    msg = mail.compose(content(None), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    with smtp_server(**options) as box:
        good = mail_settings(
            tmp_path, box.port, smtp_starttls=True, smtp_user="reports", smtp_password="s3cret"
        )
        assert mail.send(good, msg, sleep=lambda _s: None) == 1
        assert len(box.messages) == 1
        bad = good.model_copy(update={"smtp_password": "wrong"})
        waits: list[float] = []
        with pytest.raises(mail.MailFailed, match="535"):
            mail.send(bad, msg, sleep=waits.append)
        assert waits == []  # a refused login is permanent: not retried
    assert logins[0] == (b"reports", b"s3cret")
    assert set(logins[1:]) == {(b"reports", b"wrong")}  # smtplib tries PLAIN, then LOGIN


def test_starttls_refuses_an_untrusted_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_cert(tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = self_signed_cert(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    msg = mail.compose(content(None), sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    with smtp_server(tls_context=server_tls, require_starttls=True) as box:
        settings = mail_settings(tmp_path, box.port, smtp_starttls=True)
        with pytest.raises(mail.MailFailed, match="CERTIFICATE_VERIFY_FAILED"):
            mail.send(settings, msg, sleep=lambda _s: None)
        assert box.messages == []


def test_compressed_formats_are_attached_as_they_are_and_jsonl_is_gzipped(tmp_path: Path) -> None:
    book = tmp_path / "evaluation-results-abcd1234.xlsx"
    book.write_bytes(b"PK\x03\x04 a workbook")
    msg = mail.compose(
        replace(content(book), file_name=book.name, note="2 cells were cut"),
        sender="a@x.org",
        recipients=["b@y.org"],
        attach_max_mb=1,
    )
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == book.name
    assert attachment.get_content_type().endswith("spreadsheetml.sheet")
    assert attachment.get_content() == book.read_bytes()
    assert "Note: 2 cells were cut" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    lines = tmp_path / "evaluation-results-abcd1234.jsonl"
    lines.write_text('{"a":1}\n', encoding="utf-8")
    msg = mail.compose(
        replace(content(lines), file_name=lines.name),
        sender="a@x.org",
        recipients=["b@y.org"],
        attach_max_mb=1,
    )
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "evaluation-results-abcd1234.jsonl.gz"
    assert gzip.decompress(attachment.get_content()) == lines.read_bytes()

    msg = mail.compose(
        replace(content(book), file_name=book.name),
        sender="a@x.org",
        recipients=["b@y.org"],
        attach_max_mb=1 / 1024 / 1024,
    )
    assert list(msg.iter_attachments()) == []


def test_filter_text_in_an_email_is_escaped_as_html(tmp_path: Path) -> None:
    where = "where response ~ '<a href=\"http://evil.example\">x</a>' and ![i](http://e/i.png)"
    mailed = mail.ExportMail(
        schedule="s",
        dataset="evaluation-results",
        rows=1,
        summary=where,
        link="http://dash.example.org/history?export=abc",
        file_path=None,
        file_name="f.csv",
    )
    msg = mail.compose(mailed, sender="a@x.org", recipients=["b@y.org"], attach_max_mb=1)
    page = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert '<a href="http://evil.example">' not in page
    assert "&lt;a href=&quot;http://evil.example&quot;&gt;" in page
    assert "<img" not in page
