"""One journey in a real browser: log in, see charts, open a share link, export and download."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_retry import once_more
from ui_data import insert_rows

from nano_export import auth, queries
from nano_export.bootstrap import initialize
from nano_export.db import get_engine
from nano_export.models import FilterSpec
from nano_export.settings import get_settings

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("NANO_EXPORT_SCREENSHOTS", "/tmp/nano-export-shots"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A dashboard + API server on a free loopback port over a prepared data folder."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing at /usr/bin/chromium: `make test` installs it as root")
        pytest.skip("chromium is not installed at /usr/bin/chromium")
    data = tmp_path / "data"
    env = {
        **os.environ,
        "NANO_EXPORT_DATA_DIR": str(data),
        "NANO_EXPORT_DATABASE_URL": f"sqlite:///{data / 'nano-export.db'}",
        "NANO_EXPORT_SECRET_KEY": "browser-test-secret-0123456789abcdef012345",
        "NANO_EXPORT_LOGIN_SLEEP_TIME": "0",
    }
    settings = get_settings(
        data_dir=data, database_url=env["NANO_EXPORT_DATABASE_URL"], secret_key="x" * 40
    )
    initialize(settings)
    insert_rows(get_engine(settings.db_url))
    auth.add_user(
        get_engine(settings.db_url), username="anna", role="analyst", password="pw-anna-browser"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"server did not start:\n{out[-3000:]}")
            time.sleep(0.3)
        yield base, settings.db_url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def log_out(page: Any) -> None:
    """Click "Log out" and wait for the login form (one more click if a race swallows the first:
    see ``browser_retry.once_more``); what a logout does (the old cookie is dead) is still checked.
    """
    from playwright.sync_api import expect

    form = page.get_by_role("textbox", name="Username")
    logout = page.get_by_role("button", name="Log out")
    once_more(logout.click, form, "the first click on Log out did not log out", 15_000)
    expect(form).to_be_visible()


def test_login_share_link_export_and_download(server: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db_url = server
    expect.set_options(timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        page = context.new_page()
        page.set_default_timeout(30_000)

        page.goto(base)
        page.get_by_role("textbox", name="Username").fill("anna")
        page.get_by_role("textbox", name="Password").fill("pw-anna-browser")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("heading", name="Explore").first).to_be_visible()
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("8")
        page.screenshot(path=str(SHOTS / "1-explore.png"), full_page=True)

        page.goto(f"{base}/?provider=openai&success=true")
        expect(page.get_by_role("heading", name="Explore").first).to_be_visible()
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("3")
        page.screenshot(path=str(SHOTS / "2-share-link.png"), full_page=True)

        page.get_by_role("link", name="Export").click()
        expect(page.get_by_role("heading", name="Export").first).to_be_visible()
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("3")
        page.get_by_role("button", name="Start export").click()
        expect(page.get_by_text("Export finished")).to_be_visible()
        page.screenshot(path=str(SHOTS / "3-export.png"), full_page=True)

        href = page.locator("a.nx-download").get_attribute("href")
        assert href and href.startswith("/api/exports/")
        resp = context.request.get(base + href)  # the browser's cookies: the login cookie
        assert resp.status == 200, resp.text()
        rows = list(csv.reader(io.StringIO(resp.text())))
        expected = queries.count_rows(
            get_engine(db_url),
            dataset="evaluation-results",
            spec=FilterSpec(provider=("openai",), success=True),
        )
        assert len(rows) - 1 == expected == 3

        page.get_by_role("link", name="History").click()
        expect(page.get_by_role("heading", name="History").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "4-history.png"), full_page=True)
        browser.close()


def test_deep_link_survives_the_login_and_the_login_has_no_sidebar(
    server: tuple[str, str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _db_url = server
    expect.set_options(timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(30_000)

        page.goto(f"{base}/export?provider=openai")
        expect(page.get_by_role("textbox", name="Username")).to_be_visible()
        page.wait_for_timeout(1500)  # the "Page not found" dialog came a moment after the form
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()
        assert page.url == f"{base}/export?provider=openai"
        page.screenshot(path=str(SHOTS / "5-login-deep-link.png"), full_page=True)

        page.get_by_role("textbox", name="Username").fill("anna")
        page.get_by_role("textbox", name="Password").fill("pw-anna-browser")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("heading", name="Export").first).to_be_visible()
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("4")
        assert page.url.startswith(f"{base}/export?") and "provider=openai" in page.url

        # A second tab, logged in by the cookie, opens the link directly (no redirect to /).
        other = context.new_page()
        other.goto(f"{base}/history?provider=openai")
        expect(other.get_by_role("heading", name="History").first).to_be_visible()
        assert other.url.startswith(f"{base}/history")
        other.close()

        # A bad parameter in a link: the good ones apply and the bad one is named (and stays).
        page.goto(f"{base}/?provider=openai&since=2026-13-45")
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("4")
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("Ignored part of the link: since")).to_be_visible()
        page.wait_for_timeout(2000)
        expect(sidebar.get_by_text("Ignored part of the link: since")).to_be_visible()

        log_out(page)
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()
        page.screenshot(path=str(SHOTS / "6-after-logout.png"), full_page=True)
        browser.close()


def test_filter_text_is_plain_text_and_an_old_cookie_is_dead_after_logout(
    server: tuple[str, str],
) -> None:
    from urllib.parse import quote

    from playwright.sync_api import expect, sync_playwright

    base, _db_url = server
    expect.set_options(timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    where = "response ~ '[Session expired, log in again](http://evil.example/login)'"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(base)
        page.get_by_role("textbox", name="Username").fill("anna")
        page.get_by_role("textbox", name="Password").fill("pw-anna-browser")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("heading", name="Explore").first).to_be_visible()
        # The login cookie is set on the run after the form's: wait for it before opening
        # another URL (a new session that logs in by the cookie).
        deadline = time.monotonic() + 20
        while not any(c["name"] == auth.COOKIE_NAME for c in context.cookies()):
            assert time.monotonic() < deadline, "the login cookie was never set"
            page.wait_for_timeout(200)

        page.goto(f"{base}/?where={quote(where)}")
        expect(page.get_by_role("heading", name="Explore").first).to_be_visible()
        caption = page.locator('[data-testid="stCaptionContainer"]').first
        expect(caption).to_contain_text(
            "[Session expired, log in again](http://evil.example/login)"
        )
        expect(page.locator('a[href*="evil.example"]')).to_have_count(0)
        expect(page.locator('img[src*="evil.example"]')).to_have_count(0)
        page.screenshot(path=str(SHOTS / "7-markdown-as-text.png"), full_page=True)

        copied = context.cookies()
        assert any(c["name"] == "nano_export_auth" for c in copied)
        log_out(page)

        # Someone who copied the cookie before the logout gets the login form.
        replay = browser.new_context(viewport={"width": 1400, "height": 1400})
        replay.add_cookies(copied)
        other = replay.new_page()
        other.goto(base)
        expect(other.get_by_role("textbox", name="Username")).to_be_visible()
        other.wait_for_timeout(1500)
        expect(other.get_by_role("heading", name="Explore")).to_have_count(0)
        browser.close()


def test_an_excel_workbook_downloads_from_the_dashboard_and_opens(
    server: tuple[str, str], tmp_path: Path
) -> None:
    from openpyxl import load_workbook
    from playwright.sync_api import expect, sync_playwright

    base, _db_url = server
    expect.set_options(timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 2200}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(30_000)

        page.goto(f"{base}/export?provider=openai")
        page.get_by_role("textbox", name="Username").fill("anna")
        page.get_by_role("textbox", name="Password").fill("pw-anna-browser")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("heading", name="Export").first).to_be_visible()
        page.get_by_text("Excel workbook", exact=True).click()
        expect(page.get_by_text("Sheets", exact=True)).to_be_visible()
        page.get_by_role("button", name="Start export").click()
        expect(page.get_by_text("Export finished")).to_be_visible()
        link = page.locator("a.nx-download")
        expect(link).to_contain_text(".xlsx")
        with page.expect_download() as info:
            link.click()
        download = info.value
        assert download.suggested_filename.endswith(".xlsx")
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        page.screenshot(path=str(SHOTS / "7-xlsx-export.png"), full_page=True)
        browser.close()

    book = load_workbook(path)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header[:2] == ["execution_id", "eval_run_id"] and sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 4
    assert {r[header.index("provider")] for r in rows} == {"openai"}
    assert all(isinstance(r[header.index("success")], bool) for r in rows)
