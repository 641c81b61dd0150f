"""Every command and option of ``nano-export`` is documented, and ``--help`` works everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from nano_export.cli import main


def _walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(main))


def test_the_tree_holds_every_command_of_the_contract() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {
        "init",
        "seed",
        "import",
        "users add",
        "tokens create",
        "tokens list",
        "tokens revoke",
        "export",
        "exports list",
        "exports cancel",
        "exports prune",
        "audit",
        "config",
        "schedules add",
        "schedules list",
        "schedules pause",
        "schedules resume",
        "schedules remove",
        "schedules run",
        "scheduler",
    }
    assert expected <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    label = " ".join(path) or "nano-export"
    assert (command.help or "").strip(), f"{label} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{label} {param.opts[0]} has no help text"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
