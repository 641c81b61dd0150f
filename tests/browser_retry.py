"""One more try for a browser step that a dashboard race can swallow under load."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def once_more(action: Callable[[], None], ready: Any, warning: str, timeout_ms: int) -> None:
    """Do ``action`` and wait until the locator ``ready`` appears; if it does not within
    ``timeout_ms``, warn (the test run shows it) and do ``action`` once more.

    Under load, an event that arrives while a logged-in browser's new session is still in its first
    runs (cookie login, the cookie component's reruns) has been lost in CI: a link drew Explore
    instead of its page, a click on "Log out" did nothing. It never happens on a quiet machine and
    is not understood yet; the product still has it. One more try keeps a test of what a page does
    from being lost to it; the tests of those steps themselves allow none.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(2):
        action()
        try:
            ready.wait_for(timeout=timeout_ms)
            return
        except PlaywrightTimeout:
            if attempt:
                raise
            warnings.warn(warning, stacklevel=3)
