"""Commands of this group are added as their features land."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the main group."""
    del group
