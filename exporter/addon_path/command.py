"""`agentcap addon-path`: where the capture addon is, for `mitmdump -s "$(agentcap addon-path)"`."""

import click

from exporter.cli_base import Command
from exporter.shared.addon import addon_path


@click.command("addon-path", cls=Command)
def addon_path_command() -> None:
    """Print the path of the capture addon, for `mitmdump -s "$(agentcap addon-path)" …`."""
    click.echo(addon_path())
