"""The dashboard for daily use, in a real browser: errors in view, dates, Run again, schedules,
rows, traces, saved views, keyboard, and screenshots of every page in light and dark."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_retry import once_more
from factories import insert_executions
from ui_data import insert_interactions, insert_rows

from nano_export import auth, queries, rows
from nano_export.bootstrap import initialize
from nano_export.db import get_engine
from nano_export.models import FilterSpec
from nano_export.schema import exports, schedules
from nano_export.settings import get_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SHOTS = Path(os.environ.get("NANO_EXPORT_SCREENSHOTS", "/tmp/nano-export-shots")) / "daily"
SECRET = "browser-daily-secret-0123456789abcdef012345"
USERS = {"anna": "analyst", "bob": "analyst", "adam": "admin"}
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass
class Site:
    """The running server and what the tests need to reach it."""

    base: str
    db_url: str
    env: dict[str, str]
    pw: Any
    browser: Any

    def login(self, user: str, *, dark: bool = False) -> Any:
        """A new page of a new browser context, logged in as ``user``, on Explore."""
        from playwright.sync_api import expect

        context = self.browser.new_context(
            viewport=VIEWPORT, color_scheme="dark" if dark else "light"
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(self.base)
        heading = page.get_by_role("heading", name="Explore").first
        for _attempt in range(3):  # a click while the form is still being drawn can be lost
            page.get_by_role("textbox", name="Username").fill(user)
            page.get_by_role("textbox", name="Password").fill(f"pw-{user}-browser")
            page.get_by_role("button", name="Login").click()
            try:
                heading.wait_for(timeout=15_000)
                break
            except Exception:
                continue
        expect(heading).to_be_visible()
        # The login cookie is set on the run after the form's: wait for it, so that opening
        # another URL (a new session) logs in by the cookie.
        deadline = time.monotonic() + 20
        while not any(c["name"] == auth.COOKIE_NAME for c in context.cookies()):
            assert time.monotonic() < deadline, "the login cookie was never set"
            page.wait_for_timeout(200)
        return page

    def cli(self, *args: str) -> str:
        """Run ``nano-export`` against the server's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "nano_export", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module: the known rows, 320 more, a trace, three users."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing at /usr/bin/chromium: `make test` installs it as root")
        pytest.skip("chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path_factory.mktemp("daily") / "data"
    env = {
        **os.environ,
        "NANO_EXPORT_DATA_DIR": str(data),
        "NANO_EXPORT_DATABASE_URL": f"sqlite:///{data / 'nano-export.db'}",
        "NANO_EXPORT_SECRET_KEY": SECRET,
        "NANO_EXPORT_LOGIN_SLEEP_TIME": "0",
        "NANO_EXPORT_SMTP_HOST": "",
    }
    settings = get_settings(data_dir=data, database_url=env["NANO_EXPORT_DATABASE_URL"])
    initialize(settings)
    engine = get_engine(settings.db_url)
    insert_rows(engine)
    insert_interactions(engine)
    insert_executions(engine, 320, first_id=101)
    for name, role in USERS.items():
        auth.add_user(engine, username=name, role=role, password=f"pw-{name}-browser")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        expect.set_options(timeout=30_000)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield Site(base=base, db_url=settings.db_url, env=env, pw=pw, browser=browser)
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def anna(site: Site) -> Iterator[Any]:
    """Anna's logged-in page, shared by the tests (each opens the URL it needs)."""
    page = site.login("anna")
    yield page
    page.context.close()


def open_page(page: Any, url: str, heading: str) -> None:
    """Open ``url`` in ``page`` and wait for its page, titled ``heading`` (exactly); one more try
    if a race draws Explore instead (see ``browser_retry.once_more``). The test of deep links
    themselves (test_browser.py) allows none.
    """
    title = page.get_by_role("heading", name=heading, exact=True).first
    warning = f"{url} did not open its page ({heading}) the first time"
    once_more(lambda: page.goto(url), title, warning, 20_000)


def metric(page: Any, n: int = 0) -> Any:
    return page.locator('[data-testid="stMetricValue"]').nth(n)


def main_area(page: Any) -> Any:
    return page.locator('[data-testid="stMain"]')


def settled(page: Any) -> None:
    """Wait until the page's script run is over: a click that lands during a run can be lost."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def box_of(page: Any, element: Any) -> Any:
    """``element``'s bounding box once the page's run is over (None if it never has one): an
    element a rerun draws again has no box while it is replaced."""
    settled(page)
    for _attempt in range(50):
        box = element.bounding_box()
        if box is not None:
            return box
        page.wait_for_timeout(100)
    return None


def test_enter_applies_a_typed_date_and_reversed_dates_say_why_at_the_top(
    site: Site, anna: Any
) -> None:
    from playwright.sync_api import expect

    anna.goto(f"{site.base}/?provider=anthropic&provider=ollama&provider=openai&model=gpt-5")
    expect(metric(anna)).to_have_text("1")
    anna.goto(site.base)
    total = queries.count_rows(
        get_engine(site.db_url), dataset="evaluation-results", spec=FilterSpec()
    )
    expect(metric(anna)).to_have_text(f"{total:,}")
    # The field is year, month and day segments: type into it, then Enter (no click elsewhere).
    anna.get_by_role("spinbutton", name="year, Since (UTC)").click()
    anna.keyboard.type("20250805")
    anna.keyboard.press("Enter")
    expect(metric(anna)).to_have_text("4")  # the known rows of Aug 5 … 8
    assert "since=2025-08-05" in anna.url
    anna.get_by_role("spinbutton", name="year, Until (UTC)").click()
    anna.keyboard.type("20250802")
    anna.keyboard.press("Enter")
    # The reason is at the top of the page, without opening Advanced.
    top = main_area(anna).get_by_text(re.compile(r"since \(2025-08-05\) is after until"))
    expect(top).to_be_visible()
    box = box_of(anna, top)
    assert box is not None and box["y"] < VIEWPORT["height"] / 2
    expect(anna.get_by_role("textbox", name="Where")).to_be_hidden()  # Advanced stays closed


def test_run_again_loads_the_spec_and_starts_only_when_asked(site: Site, anna: Any) -> None:
    from factories import insert_export
    from playwright.sync_api import expect
    from sqlalchemy import func, select

    engine = get_engine(site.db_url)
    insert_export(
        engine,
        owner="anna",
        export_id="earlier1",
        status="succeeded",
        rows_done=2,
        spec='{"filters": {"provider": ["anthropic"], "since": "2025-08-05"}, "columns": null, '
        '"rename": {}}',
    )

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(exports)).scalar_one())

    before = count()
    open_page(anna, f"{site.base}/history", "History")
    settled(anna)
    anna.get_by_role("button", name="Run again with the same spec").click()
    expect(anna.get_by_role("heading", name="Export").first).to_be_visible()
    expect(anna.get_by_text("Loaded the spec of export earlier1")).to_be_visible()
    expect(anna.get_by_role("button", name="Start export")).to_be_visible()
    expect(metric(anna)).to_have_text("2")  # the builder counts the loaded spec
    expect(anna.get_by_text("Current export")).to_have_count(0)
    anna.wait_for_timeout(1000)
    assert count() == before  # nothing started
    settled(anna)
    anna.get_by_role("button", name="Start export").click()
    finished = anna.get_by_text("Export finished: 2 rows")
    expect(finished).to_be_visible()
    box = box_of(anna, finished)  # drawn again by the rerun that follows the progress fragment
    assert box is not None and box["y"] < VIEWPORT["height"]  # in view, no scrolling
    assert count() == before + 1


def test_schedules_say_email_is_off_and_admins_default_to_standard(site: Site, anna: Any) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    open_page(anna, f"{site.base}/schedules", "Schedules")
    expect(anna.get_by_text("Email is not set up on this server")).to_be_visible()
    expect(anna.get_by_text("run in this dashboard's own process")).to_be_visible()
    anna.get_by_role("textbox", name="Name").fill("weekly look")
    anna.get_by_role("textbox", name="Email recipients (one per line)").fill("a@example.org")
    created = anna.get_by_text("Schedule 'weekly look' created")
    engine = get_engine(site.db_url)
    mine = schedules.select().where(schedules.c.name == "weekly look")
    for _attempt in range(3):
        settled(anna)
        with engine.connect() as conn:  # submit again only if the submit before was lost
            if conn.execute(mine).first() is not None:
                break
        anna.get_by_role("button", name="Create schedule").click()
        try:
            created.wait_for(timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    expect(created).to_be_visible()
    expect(anna.get_by_text("its runs will not be emailed")).to_be_visible()
    expect(anna.get_by_text("Email is not set up on this server")).to_be_visible()

    admin = site.login("adam")
    try:
        open_page(admin, f"{site.base}/schedules", "Schedules")
        expect(admin.get_by_role("radio", name="standard")).to_be_checked()
        expect(admin.get_by_role("radio", name="full")).not_to_be_checked()
    finally:
        admin.context.close()


PICKER = "Open an execution of this page"


def _page_ids(page: Any) -> list[int]:
    """The execution ids of the grid's first rows, in order (the grid draws what fits)."""
    cells = page.locator('[data-testid^="glide-cell-0-"]')
    cells.first.wait_for(state="attached")
    return [int(t) for t in cells.all_text_contents() if t.strip()]


def _cell(page: Any, column: int, row: int) -> str:
    """A cell of the grid, from the table the grid keeps for screen readers."""
    return str(page.locator(f'[data-testid="glide-cell-{column}-{row}"]').first.text_content())


def _open_execution(page: Any, execution_id: int) -> None:
    page.get_by_role("combobox", name=PICKER).click()
    page.get_by_role("option", name=str(execution_id), exact=True).click()


def test_rows_page_three_sorted_by_cost_and_searched_match_the_cli(
    site: Site, anna: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    open_page(anna, f"{site.base}/rows", "Rows")
    search = anna.get_by_role("textbox", name="Search text")
    search.fill("ANSWER")
    search.press("Enter")
    anna.get_by_role("combobox", name="Sort by").click()
    anna.get_by_role("option", name="cost_usd").click()
    anna.get_by_role("radio", name="Descending").click()
    where = rows.search_where("ANSWER", dataset="evaluation-results", level="standard")
    assert where is not None
    dry = site.cli("export", "evaluation-results", "--user", "anna", "--where", where, "--dry-run")
    total = int(re.search(r": (\d+) rows", dry).group(1))  # type: ignore[union-attr]
    assert total == 320  # the factory rows answer "answer N"; the known rows do not
    expect(anna.get_by_text(f"rows 1–100 of {total}")).to_be_visible()
    page_field = anna.locator('[data-testid="stNumberInput"] input')
    for number, (first, last) in enumerate(((101, 200), (201, 300)), start=2):
        anna.get_by_role("button", name="Next").click()
        expect(anna.get_by_text(f"rows {first}–{last} of {total}")).to_be_visible()
        expect(page_field).to_have_value(str(number))

    out = tmp_path / "same.csv"
    site.cli("export", "evaluation-results", "--user", "anna", "--where", where, "--out", str(out))
    with out.open(newline="") as fh:
        exported = list(csv.DictReader(fh))
    assert len(exported) == total
    exported.sort(key=lambda r: (-float(r["cost_usd"] or 0), int(r["execution_id"])))
    expected = [int(r["execution_id"]) for r in exported[200:300]]
    # The grid redraws a moment after the caption: wait for its first row, then read the rest.
    expect(anna.locator('[data-testid="glide-cell-0-0"]')).to_have_text(str(expected[0]))
    shown = _page_ids(anna)
    assert len(shown) >= 5 and shown == expected[: len(shown)], (shown, expected[:12])
    assert _cell(anna, 5, 0) == exported[200]["model"]  # the same row, cell for cell


def test_an_execution_shows_its_tool_calls_in_order(site: Site, anna: Any) -> None:
    from playwright.sync_api import expect

    open_page(anna, f"{site.base}/rows", "Rows")
    _open_execution(anna, 1)
    expect(anna.get_by_text("Trace — 5 interaction(s), in order")).to_be_visible()
    tops = []
    for tool in ("read_file", "write_file", "list_directory"):
        step = main_area(anna).get_by_text(tool, exact=True)
        expect(step).to_be_visible()
        box = box_of(anna, step)
        assert box is not None
        tops.append(box["y"])
    assert tops == sorted(tops)
    text = main_area(anna).inner_text()
    assert "[REDACTED]" in text and "ghp_" not in text and "sk-proj-" not in text


def test_a_saved_shared_view_opens_for_a_teammate(site: Site, anna: Any) -> None:
    from playwright.sync_api import expect

    open_page(anna, f"{site.base}/views?provider=anthropic", "Saved views")
    anna.get_by_role("textbox", name="Name").fill("anthropic runs")
    settled(anna)
    anna.get_by_text("Share with the team").click()
    anna.get_by_role("button", name="Save view").click()
    expect(anna.get_by_text("Saved the view 'anthropic runs' (shared)")).to_be_visible()

    expected = queries.count_rows(
        get_engine(site.db_url),
        dataset="evaluation-results",
        spec=FilterSpec(provider=("anthropic",)),
    )
    bob = site.login("bob")
    try:
        bob.goto(f"{site.base}/views")
        expect(bob.locator('[data-testid="glide-cell-0-0"]')).to_have_text("anna/anthropic runs")
        settled(bob)
        bob.get_by_role("button", name="Open in Explore").click()
        expect(bob.get_by_role("heading", name="Explore").first).to_be_visible()
        expect(metric(bob)).to_have_text(f"{expected:,}")
        assert "provider=anthropic" in bob.url
    finally:
        bob.context.close()


def test_tab_from_the_top_reaches_the_filters(site: Site, anna: Any) -> None:
    from playwright.sync_api import expect

    anna.goto(site.base)
    expect(anna.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
    expect(anna.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    seen = []
    for _ in range(40):
        anna.keyboard.press("Tab")
        seen.append(
            anna.evaluate(
                """() => {
                    const el = document.activeElement;
                    return el.closest('[data-testid="stSidebar"]') ? el.getAttribute('aria-label')
                        : el.closest('[data-testid="stDataFrame"]') ? 'sample table' : el.tagName;
                }"""
            )
        )
        if seen[-1] == "Provider":
            break
    assert seen[-1] == "Provider", seen  # past the pages and the log-out, before any table
    assert "sample table" not in seen


PAGES = [
    ("", "Explore"),
    ("rows", "Rows"),
    ("export", "Export"),
    ("history", "History"),
    ("schedules", "Schedules"),
    ("views", "Saved views"),
    ("dictionary", "Data dictionary"),
    ("audit", "Audit log"),
]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_screenshots_of_every_page(site: Site, dark: bool) -> None:
    from playwright.sync_api import expect

    folder = SHOTS / ("dark" if dark else "light")
    folder.mkdir(parents=True, exist_ok=True)
    page = site.login("adam", dark=dark)
    try:
        for path, heading in PAGES:
            open_page(page, f"{site.base}/{path}", heading)
            if path in ("", "export"):  # wait for the numbers, not their placeholders
                expect(metric(page)).to_be_visible()
            page.wait_for_timeout(1500)  # charts and grids finish drawing
            if path == "rows":
                _open_execution(page, 1)
                expect(page.get_by_text("Trace — 5 interaction(s)")).to_be_visible()
            page.screenshot(path=str(folder / f"{path or 'explore'}.png"))
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('.stApp')).backgroundColor"
        )
        assert (background == "rgb(20, 22, 28)") == dark, background
    finally:
        page.context.close()


def test_a_date_preset_sets_since_in_utc_and_the_link_counts_the_same(
    site: Site, anna: Any
) -> None:
    from datetime import UTC, datetime, timedelta
    from urllib.parse import parse_qs, urlparse

    from playwright.sync_api import expect
    from sqlalchemy import update

    from nano_export import filters
    from nano_export.schema import executions

    engine = get_engine(site.db_url)
    insert_executions(engine, 3, first_id=9001)  # recent runs: 2 days, 10 days and 40 days old
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for n, days in enumerate((2, 10, 40)):
            conn.execute(
                update(executions)
                .where(executions.c.id == 9001 + n)
                .values(started_at=now - timedelta(days=days))
            )
    anna.goto(site.base)
    sidebar = anna.locator('[data-testid="stSidebar"]')
    for preset, expected in (("7 days", 1), ("30 days", 2)):
        sidebar.get_by_text(preset, exact=True).click()
        expect(metric(anna)).to_have_text(str(expected))
        expect(
            sidebar.get_by_text(re.compile(r"From \d{4}-\d\d-\d\d \d\d:\d\d UTC to now"))
        ).to_be_visible()
        since = parse_qs(urlparse(anna.url).query)["since"][0]
        began = filters.start_of(filters.parse_time("since", since))
        days = int(preset.split()[0])
        assert abs((now - timedelta(days=days) - began).total_seconds()) < 180, since
        spec = FilterSpec(since=began)
        assert queries.count_rows(engine, dataset="evaluation-results", spec=spec) == expected
    # the link, opened again, shows the same rows
    anna.goto(anna.url)
    expect(metric(anna)).to_have_text("2")
    expect(sidebar.get_by_text(re.compile(r"UTC to now"))).to_be_visible()
