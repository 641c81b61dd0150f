"""How many planted credentials each detector finds: nano-export's redaction against two
maintained secret scanners run on the same texts.

Runs the corpus of ``tests/credential_corpus.py`` (planted credentials in agent text) and its clean
corpus through:

- ``nano-export``: ``privacy.redact_credentials`` (a credential counts when no part survives);
- ``detect-secrets``: Yelp's engine (the ``bc-detect-secrets`` fork), default plugins, line by
  line, as its scanner reads a file;
- ``credsweeper``: Samsung's CredSweeper with its ML validator, on the same lines.

A scanner finds a credential when a value it reports overlaps it by 8 characters or more. The two
scanners are optional (``pip install bc-detect-secrets credsweeper``); the ones not installed are
skipped.

    python bench/ruleset_compare.py
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from credential_corpus import CORPUS, Case, clean_corpus, leaked

from nano_export import privacy


def _overlaps(found: str, secret: str) -> bool:
    if not found:
        return False
    if found in secret or secret in found:
        return len(found) >= min(8, len(secret))
    return any(secret[i : i + 8] in found for i in range(0, max(1, len(secret) - 7)))


def detect_secrets_values() -> Callable[[str], list[str]] | None:
    """detect-secrets' findings in a text, or None when it is not installed."""
    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings
    except ImportError:
        return None

    def scan(text: str) -> list[str]:
        values: list[str] = []
        with default_settings():
            for line in text.splitlines():
                values.extend(str(s.secret_value) for s in scan_line(line))
        return values

    return scan


def credsweeper_values() -> Callable[[str], list[str]] | None:
    """CredSweeper's findings (ML-validated) in a text, or None when it is not installed."""
    try:
        from credsweeper import CredSweeper, StringContentProvider
    except ImportError:
        return None
    sweeper = CredSweeper()

    def scan(text: str) -> list[str]:
        provider = StringContentProvider(lines=text.splitlines())
        return [
            ld.value for c in sweeper.file_scan(provider) for ld in c.line_data_list if ld.value
        ]

    return scan


def main() -> None:
    """Print recall on the corpus and clean texts flagged, per detector."""
    clean = clean_corpus()
    print(
        f"corpus: {len(CORPUS)} credentials, {len({c.kind for c in CORPUS})} kinds; "
        f"clean corpus: {len(clean)} texts"
    )

    def ours(case: Case) -> bool:
        return not leaked(case, privacy.redact_credentials(case.text))

    rows = [("nano-export", ours, lambda t: privacy.redact_credentials(t) != t)]
    for name, factory in (
        ("detect-secrets", detect_secrets_values),
        ("credsweeper", credsweeper_values),
    ):
        scan = factory()
        if scan is None:
            print(f"{name}: not installed, skipped")
            continue
        rows.append(
            (
                name,
                lambda case, scan=scan: any(_overlaps(v, case.secret) for v in scan(case.text)),
                lambda text, scan=scan: bool(scan(text)),
            )
        )
    for name, found, flags in rows:
        started = time.perf_counter()
        missed = [case for case in CORPUS if not found(case)]
        false = sum(1 for text in clean if flags(text))
        by_context = collections.Counter(case.context for case in missed)
        print(
            f"{name:>15}: {len(CORPUS) - len(missed)}/{len(CORPUS)} found, "
            f"{false}/{len(clean)} clean texts flagged, {time.perf_counter() - started:.1f} s; "
            f"missed by context: {dict(by_context)}"
        )


if __name__ == "__main__":
    main()
