"""Known credential formats, from CredSweeper's maintained ruleset.

CredSweeper (Samsung, MIT) keeps a YAML table of credential formats: 150 rules, each with its
expressions, the substrings it requires and whether its authors trust it without their ML
validator. nano-export reads that table as data (no CredSweeper code runs) and takes the rules
that are trusted without ML, written for documents as well as code, and that name a secret, not an
identifier: a new release of the package brings its new formats here with no code of ours.

Left out, with the reason, in ``EXCLUDED``; the context rules of :mod:`nano_export.privacy.context`
cover what they would find in agent text (key/value pairs, headers, command lines, prose).
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from nano_export.privacy.engine import Detector

logger = logging.getLogger(__name__)

PACKAGE = "credsweeper"

EXCLUDED: dict[str, str] = {
    "UUID": "an identifier, not a secret",
    "Product Activation Key": "five groups of five upper-case characters: build ids, part numbers",
    "Firebase Domain": "a host name, not a secret",
    "AWS S3 Bucket": "a bucket name, not a secret",
    "Tencent WeChat API App ID": "an application id, not a secret",
    "Dropbox App secret": "any 15 lower-case letters and digits: needs CredSweeper's ML",
    "OTP / 2FA Secret": "any 16 or 32 upper-case letters: needs CredSweeper's ML",
    "Jira / Confluence PAT token": "44 random characters without a prefix: needs ML",
    "Basic Authorization": "matches 'basic implementation'; the authorization rule covers it",
    "Bearer Authorization": "the bearer and authorization rules cover it, with their context",
    "Facebook App Token": "digits|characters: matches table rows",
    "BASE64 Private Key": (
        "its body runs on over spaces into the following words; the private_key rule covers "
        "PEM blocks"
    ),
    "Slack Webhook": "the slack_webhook context rule covers it, keeping the path up to the secret",
}


def ruleset_path() -> Path:
    """Where the installed CredSweeper keeps its rules (its code is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {PACKAGE} package is not installed: pip install {PACKAGE}")
    return Path(next(iter(spec.submodule_search_locations))) / "rules" / "config.yaml"


def _discord_bot(value: str) -> bool:
    """A Discord bot token starts with the bot's numeric user id in base64."""
    head = value.split(".", 1)[0]
    try:
        decoded = base64.b64decode(head + "=" * (-len(head) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit()


# CredSweeper's own filters for these rules, restated: without them the shape alone is too loose.
VALIDATORS = {"Discord Bot Token": _discord_bot}


def _wanted(rule: dict[str, Any]) -> bool:
    return (
        rule.get("type") == "pattern"
        and not rule.get("use_ml")
        and "doc" in (rule.get("target") or ())
        and rule.get("name") not in EXCLUDED
    )


@functools.cache
def load() -> tuple[Detector, ...]:
    """One detector per expression of every rule taken from the ruleset."""
    path = ruleset_path()
    # libyaml's loader when PyYAML has it: ten times faster on the 150-rule table at first use.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rules = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    detectors: list[Detector] = []
    for rule in rules:
        if not _wanted(rule):
            continue
        name = str(rule["name"])
        for expression in rule["values"]:
            pattern = re.compile(expression)
            group = "value" if "value" in pattern.groupindex else None
            detectors.append(
                Detector(
                    name=f"ruleset: {name}",
                    pattern=pattern,
                    accept=VALIDATORS.get(name),
                    group=group,
                    whole_word=True,
                )
            )
    logger.debug("credential ruleset loaded", extra={"path": str(path), "rules": len(detectors)})
    return tuple(detectors)
