"""Two dashboard replicas on one PostgreSQL database and one S3 store (all on loopback).

Two web-only dashboards and two ``nano-export worker`` processes, none given
``NANO_EXPORT_SECRET_KEY``: all sign with the secret stored in the shared database. An export
started on replica A through the API runs on a worker, and is followed, listed and downloaded on
replica B with the same API token. In the browser: a user logs in on A's dashboard and starts an
export on its Export page; the file downloads from B's API with the browser's login cookie and with
an API token, and B's History page, opened in the same browser, lists it without a second login.
The bytes always match the record's sha256.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import SECRET, Server, insert_executions
from cluster import Cluster, cluster, own_database
from conftest import PG_URL
from s3_server import new_bucket
from sqlalchemy import select

from nano_export import auth, keystore, sessions, tokens
from nano_export.schema import exports

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROWS = 3_000
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("NANO_EXPORT_SCREENSHOTS", "/tmp/nano-export-shots"))
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def chromium() -> str:
    """Debian's chromium for Playwright; missing, the test fails in CI and skips elsewhere."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing at /usr/bin/chromium: `make test` installs it as root")
        pytest.skip("chromium is not installed at /usr/bin/chromium")
    return CHROMIUM


def login_cookie(context: Any, timeout: float = 30) -> str:
    """The login cookie of a browser context (set on the run after the login form's)."""
    deadline = time.monotonic() + timeout
    while True:
        for cookie in context.cookies():
            if cookie["name"] == auth.COOKIE_NAME:
                return str(cookie["value"])
        assert time.monotonic() < deadline, "the login cookie was never set"
        time.sleep(0.2)


def open_page(page: Any, title: str) -> None:
    """Open a dashboard page by its sidebar link; a click during a rerun can be lost: retried."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    heading = page.get_by_role("heading", name=title, exact=True).first
    for _attempt in range(3):
        page.get_by_role("link", name=title, exact=True).first.click()
        try:
            heading.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    expect(heading).to_be_visible()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[Cluster]:
    """Dashboards A and B (no embedded workers) and two ``nano-export worker`` processes."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("NANO_EXPORT_TEST_PG_URL must name the PostgreSQL server in CI")
        pytest.skip("NANO_EXPORT_TEST_PG_URL is not set")
    work = tmp_path_factory.mktemp("cluster")
    storage_url = f"s3://{new_bucket()}/exports"
    with own_database(PG_URL) as db_url, cluster(work, db_url, storage_url, s3_env) as running:
        insert_executions(running.servers[0].engine, ROWS)
        yield running


def wait_done(server: Server, token_user: str, export_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with server.client(token_user) as client:
        while True:
            record = client.get(f"/api/exports/{export_id}").json()
            if record["status"] not in ("queued", "running"):
                return record
            assert time.monotonic() < deadline, f"export still {record['status']}"
            time.sleep(0.2)


def test_export_started_on_a_downloads_from_b_with_the_same_token(
    replicas: Cluster,
) -> None:
    a, b = replicas.servers
    token = a.tokens["ann"]
    with a.client() as client:
        started = client.post(
            "/api/exports",
            json={"dataset": "evaluation-results", "format": "csv"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert started.status_code == 202
    export_id = started.json()["id"]

    b.tokens["ann-from-a"] = token
    record = wait_done(b, "ann-from-a", export_id)
    assert record["status"] == "succeeded" and record["rows_done"] == ROWS
    with b.client("ann-from-a") as client:
        listed = [r["id"] for r in client.get("/api/exports").json()]
        download = client.get(f"/api/exports/{export_id}/download")
    assert export_id in listed
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == record["sha256"]
    assert download.headers["x-content-sha256"] == record["sha256"]
    assert int(download.headers["content-length"]) == record["bytes"] == len(download.content)
    assert download.content.count(b"\n") == ROWS + 1
    # A worker ran it, and nothing of it stays on any disk: the file lives in the store.
    with a.engine.connect() as conn:
        ran_on = conn.execute(select(exports.c.worker).where(exports.c.id == export_id)).scalar()
    assert ran_on in {f"{os.uname().nodename}:{w.proc.pid}" for w in replicas.workers}
    for folder in [s.settings.export_dir for s in replicas.servers] + [
        w.log_path.parent / "data" / "exports" for w in replicas.workers
    ]:
        assert not any(Path(folder).glob(f"*{export_id}*"))


def test_both_replicas_are_healthy_and_report_the_same_metrics(
    replicas: Cluster,
) -> None:
    bodies = []
    for server in replicas.servers:
        with server.client("ada") as client:
            health = client.get("/api/health")
            assert health.status_code == 200, health.text
            assert health.json()["storage"] == "ok"
            metrics = client.get("/api/metrics")
            assert metrics.status_code == 200
            bodies.append(
                sorted(
                    line
                    for line in metrics.text.splitlines()
                    if line.startswith("nano_export_exports{")
                )
            )
    assert bodies[0] == bodies[1] and bodies[0]


def test_the_replicas_sign_with_the_secret_stored_in_the_database(replicas: Cluster) -> None:
    """No process gets the secret through its settings: a cookie from one is good on the other
    only because both read the one ``nano-export init`` stored in the shared database."""
    for env in [s.env for s in replicas.servers] + [w.env for w in replicas.workers]:
        assert "NANO_EXPORT_SECRET_KEY" not in env
    a, b = replicas.servers
    with a.engine.connect() as conn:
        stored = keystore.get_value(conn, keystore.SECRET_KEY)
    assert stored and stored != SECRET
    user = auth.get_user(a.engine, "ann")
    assert user is not None
    sid = sessions.start_session(a.engine, user_id=user.id, max_age_h=1)
    for secret, expected in ((stored, 200), (SECRET, 401)):
        cookie = sessions.encode_cookie(username="ann", sid=sid, secret=secret, max_age_h=1)
        for server in (a, b):
            with server.client(cookies={auth.COOKIE_NAME: cookie}) as client:
                assert client.get("/api/exports").status_code == expected, server.base_url


@pytest.mark.browser
def test_logged_in_on_a_in_the_browser_the_export_downloads_from_b_and_is_in_its_history(
    replicas: Cluster,
) -> None:
    """Log in on A's dashboard and start an export on its Export page; the browser's cookie and
    an API token download it from B's API, and B's History shows it without a second login."""
    executable = chromium()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    a, b = replicas.servers
    auth.add_user(a.engine, username="cara", role="analyst", password="pw-cara-browser")
    b.tokens["cara"] = tokens.create_token(a.engine, name="cara")  # any replica's token works
    expect.set_options(timeout=60_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 2000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(a.base_url)
            explore = page.get_by_role("heading", name="Explore", exact=True).first
            for _attempt in range(3):  # a click while the form is still being drawn can be lost
                page.get_by_role("textbox", name="Username").fill("cara")
                page.get_by_role("textbox", name="Password").fill("pw-cara-browser")
                page.get_by_role("button", name="Login").click()
                try:
                    explore.wait_for(timeout=20_000)
                    break
                except PlaywrightTimeout:
                    continue
            expect(explore).to_be_visible()
            cookie = login_cookie(context)
            open_page(page, "Export")
            page.get_by_role("button", name="Start export").click()
            expect(page.get_by_text("Export finished")).to_be_visible()
            href = page.locator("a.nx-download").get_attribute("href")
            assert href and href.startswith("/api/exports/") and href.endswith("/download")
            export_id = href.split("/")[3]

            with a.engine.connect() as conn:
                row = conn.execute(select(exports).where(exports.c.id == export_id)).one()
            assert row.owner == "cara" and row.status == "succeeded" and row.rows_done == ROWS
            assert row.worker in {f"{os.uname().nodename}:{w.proc.pid}" for w in replicas.workers}
            for client in (
                b.client(cookies={auth.COOKIE_NAME: cookie}),
                b.client("cara"),
            ):
                with client:
                    download = client.get(f"/api/exports/{export_id}/download")
                assert download.status_code == 200, download.text
                assert hashlib.sha256(download.content).hexdigest() == row.sha256
                assert download.headers["x-content-sha256"] == row.sha256
                assert len(download.content) == row.bytes
                assert download.content.count(b"\n") == ROWS + 1

            # B's dashboard, same browser context: the cookie logs in, no form. (Opened at its
            # root: a deep link such as /history opened by cookie sometimes lands on Explore.)
            page.goto(b.base_url)
            expect(page.get_by_role("heading", name="Explore", exact=True).first).to_be_visible()
            expect(page.get_by_role("textbox", name="Username")).to_have_count(0)
            open_page(page, "History")
            link = page.locator(f'a.nx-download[href="/api/exports/{export_id}/download"]')
            expect(link).to_contain_text(f"evaluation-results-{export_id[:8]}.csv")
            assert page.url.startswith(b.base_url)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "cluster-b-history.png"), full_page=True)
        finally:
            browser.close()
