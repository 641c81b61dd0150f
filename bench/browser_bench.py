"""Time the dashboard in a real browser (Chromium) on a seeded database.

Usage: python bench/browser_bench.py --data-dir FOLDER [--runs 3]

FOLDER holds a nano-export data folder with a seeded database (``NANO_EXPORT_DATA_DIR=FOLDER
nano-export seed --rows N``). The bench adds a user ``bench`` (analyst) when missing, starts the
dashboard on a free loopback port and prints, in seconds, per run: login to a drawn Explore (the
metrics and the four charts), a filter change (Outcome = Succeeded, until the count changes), a
page switch (Explore to Rows, until the first page is drawn), a page of rows (Next, until
rows 101-200 are drawn), and, with Outcome back to Any, sorting all rows by cost, ascending then
descending (until the first cell changes). Needs Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Start the server, drive the browser, print the timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from nano_export import auth
    from nano_export.db import get_engine
    from nano_export.settings import get_settings

    settings = get_settings(data_dir=args.data_dir)
    engine = get_engine(settings.db_url)
    if auth.role_of(engine, "bench") is None:
        auth.add_user(engine, username="bench", role="analyst", password="pw-bench-password")
    port = _free_port()
    env = {
        **os.environ,
        "NANO_EXPORT_DATA_DIR": str(args.data_dir),
        "NANO_EXPORT_LOGIN_SLEEP_TIME": "0",
        "NANO_EXPORT_EMBEDDED_WORKER": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true"],
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
                time.sleep(0.3)
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
        firsts = _first_ids(engine)
        for run in range(1, args.runs + 1):
            took = _drive(base, firsts)
            print(f"run {run}: " + "  ".join(f"{k} {v:.2f} s" for k, v in took.items()))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _first_ids(engine: Any) -> tuple[str, str]:
    """The first execution id of all rows sorted by cost, ascending and descending."""
    from nano_export import rows
    from nano_export.models import FilterSpec

    out = []
    for descending in (False, True):
        found = rows.rows_page(
            engine,
            dataset="evaluation-results",
            spec=FilterSpec(),
            level="standard",
            secret="bench",
            page_size=1,
            sort="cost_usd",
            descending=descending,
        )
        out.append(str(found.rows["execution_id"].iloc[0]))
    return out[0], out[1]


def _drive(base: str, firsts: tuple[str, str]) -> dict[str, float]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)
    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(base)
        page.get_by_role("textbox", name="Username").fill("bench")
        page.get_by_role("textbox", name="Password").fill("pw-bench-password")
        started = time.perf_counter()
        page.get_by_role("button", name="Login").click()
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(4)
        metric = page.locator('[data-testid="stMetricValue"]').first
        expect(metric).to_be_visible()
        out["login→Explore"] = time.perf_counter() - started

        before = metric.inner_text()
        started = time.perf_counter()
        page.locator('[data-testid="stSidebar"]').get_by_text("Succeeded", exact=True).click()
        expect(metric).not_to_have_text(before)
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        out["filter change"] = time.perf_counter() - started

        started = time.perf_counter()
        page.get_by_role("link", name="Rows").click()
        expect(page.get_by_text("rows 1–100 of")).to_be_visible()
        expect(page.locator('[data-testid="glide-cell-0-0"]')).to_be_attached()
        out["page switch"] = time.perf_counter() - started

        first = page.locator('[data-testid="glide-cell-0-0"]').text_content()
        started = time.perf_counter()
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("rows 101–200 of")).to_be_visible()
        expect(page.locator('[data-testid="glide-cell-0-0"]')).not_to_have_text(first or "")
        out["page of rows"] = time.perf_counter() - started

        # the sorts on the whole selection: Outcome back to Any (not timed)
        caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="rows ").first
        before = caption.inner_text()
        page.locator('[data-testid="stSidebar"]').get_by_text("Any", exact=True).click()
        expect(caption).not_to_have_text(before)
        expect(page.get_by_text("rows 1–100 of")).to_be_visible()
        cell = page.locator('[data-testid="glide-cell-0-0"]')  # the execution id of row 1
        expect(cell).to_have_text("1")
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Sort by").click()
        started = time.perf_counter()
        page.get_by_role("option", name="cost_usd").click()
        expect(cell).to_have_text(firsts[0])
        out["sort by cost"] = time.perf_counter() - started

        started = time.perf_counter()
        page.get_by_text("Descending", exact=True).click()
        expect(cell).to_have_text(firsts[1])
        out["cost descending"] = time.perf_counter() - started
        browser.close()
    return out


if __name__ == "__main__":
    main()
