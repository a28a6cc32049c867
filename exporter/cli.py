"""The `agentcap` command group and the `agentcap-export` entry point.

Every command is `exporter/<command>/command.py` (docs/architecture.md), imported only when
invoked, so `agentcap --help` stays fast and a command's heavy dependencies (pyarrow, textual)
load only for that command.
"""

import importlib
from typing import cast

import click

from exporter import __version__
from exporter.cli_base import HELP_OPTIONS, Group

# name -> ("module:attribute" of a click command, one-line help shown by `agentcap --help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "addon-path": (
        "exporter.addon_path.command:addon_path_command",
        'Print the capture addon\'s path: mitmdump -s "$(agentcap addon-path)".',
    ),
    "export": (
        "exporter.export.command:export_command",
        "Export runs as parquet datasets + traces; locally or to the Hub.",
    ),
    "inspect": (
        "exporter.inspect.command:inspect_command",
        "Browse runs, parquet files and Hub datasets call by call.",
    ),
    "ls": ("exporter.ls.command:ls_command", "List recorded runs."),
    "report": (
        "exporter.report.command:report_command",
        "Write one self-contained HTML report of runs, a parquet file or a Hub dataset.",
    ),
    "run": (
        "exporter.run.command:run_command",
        "Run an agent through the capture proxy: tasks, turns, key kept from the agent.",
    ),
    "rollouts": (
        "exporter.rollouts.command:rollouts_command",
        "Normalise agent traces and captures into one table.",
    ),
    "scan": ("exporter.scan.command:scan_command", "Secret-scan runs the way the export gate does."),
    "stats": (
        "exporter.stats.command:stats_command",
        "Tokens, cost, failures and latency per run, task, model.",
    ),
    "sync": ("exporter.sync.command:sync_command", "Upload runs to object storage (s3://, hf://buckets/…)."),
    "traces": ("exporter.traces.command:traces_group", "Collect an agent's native sessions into a run."),
}


def load_command(name: str) -> click.Command:
    module_name, attribute = COMMANDS[name][0].split(":")
    return cast(click.Command, getattr(importlib.import_module(module_name), attribute))


class LazyGroup(Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Static help lines: listing commands must not import pyarrow, textual or huggingface_hub.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_line) for name, (_, help_line) in sorted(COMMANDS.items())])


@click.group(cls=LazyGroup, context_settings=HELP_OPTIONS)
@click.version_option(__version__, prog_name="agentcap")
def main() -> None:
    """Record the LLM calls of coding agents and publish them as datasets.

    \b
    Capture:  agentcap run --agent pi --model M --upstream URL --tasks FILE
              (or by hand: mitmdump -s "$(agentcap addon-path)" --mode reverse:URL --listen-host 127.0.0.1)
    Then:     agentcap ls, inspect, scan, export (or agentcap-export)
    """


def export_main() -> None:
    """`agentcap-export`: the same command as `agentcap export`, with -h and --version of its own."""
    command = click.version_option(__version__, prog_name="agentcap-export")(load_command("export"))
    command.context_settings = {**command.context_settings, **HELP_OPTIONS}
    command.main(prog_name="agentcap-export")
