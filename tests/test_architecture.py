"""The layout rules docs/architecture.md states: one `command.py` per command, errors mapped on each."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from exporter.cli import COMMANDS, load_command
from exporter.cli_base import Command, Group
from exporter.core.errors import AbortExport, UserError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_its_folders_command_module(name: str) -> None:
    module = COMMANDS[name][0].split(":")[0]
    assert module == f"exporter.{name.replace('-', '_')}.command"
    command = load_command(name)
    assert isinstance(command, Command | Group)
    subcommands = command.commands.values() if isinstance(command, click.Group) else []
    assert all(isinstance(sub, Command) for sub in subcommands)
    assert f"`exporter/{name.replace('-', '_')}/command.py`" in DOCS.read_text()


@pytest.mark.parametrize(
    ("error", "code"), [(UserError("bad input; fix it"), 2), (AbortExport("refused"), 1)]
)
def test_a_typed_error_ends_a_command_in_one_line_with_its_exit_code(error: Exception, code: int) -> None:
    @click.command(cls=Command)
    def failing() -> None:
        raise error

    result = CliRunner().invoke(failing, [])
    assert result.exit_code == code
    assert result.output == f"Error: {error}\n"
