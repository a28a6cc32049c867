"""`agentcap traces collect`: copy an agent's native sessions active during a run into the run (`collect.py`)."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli_base import Command, Group, runs_dir_option, warn
from exporter.core.errors import UserError
from exporter.rollouts.registry import get_format
from exporter.shared.runs import resolve_targets
from exporter.traces.collect import ALIASES, NATIVE_AGENTS, collect_traces, run_window


@click.group("traces", cls=Group)
def traces_group() -> None:
    """The agents' own session traces of a run."""


@traces_group.command("collect", cls=Command)
@click.argument("run")
@click.option(
    "--agent",
    required=True,
    type=click.Choice([*NATIVE_AGENTS, *ALIASES]),
    help="Whose sessions to collect.",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Session file, directory or database (default: the agent's standard location).",
)
@runs_dir_option("RUN ids")
def collect_command(run: str, agent: str, source: Path | None, runs_dir: Path) -> None:
    """Copy the agent's sessions active during RUN into RUN/traces/.

    RUN is a run directory or a run id under --runs-dir. The window comes from run.json and the
    captures' times. JSONL sessions are copied as-is; database agents get one extract per session.
    """
    agent = ALIASES.get(agent, agent)
    runs = resolve_targets([run], all_runs=False, runs_dir=runs_dir)
    if len(runs) != 1:
        raise UserError(f"{run}: holds {len(runs)} runs; pass one run directory or run id")
    if runs[0].is_remote:
        raise UserError(f"{run}: traces are collected into a run on this machine; pass its local directory")
    sources = [source] if source else [p for p in get_format(agent).default_roots() if p.exists()]
    if not sources:
        looked = ", ".join(str(p) for p in get_format(agent).default_roots())
        raise UserError(f"no {agent} sessions at the standard location ({looked}); pass --from PATH")
    window = run_window(runs[0])
    written = collect_traces(runs[0], agent, sources, window=window, warn=warn)
    span = f"{window.start:%Y-%m-%d %H:%M:%S} – {window.end:%H:%M:%S} UTC"
    if not written:
        click.echo(
            f"no {agent} sessions were active during {runs[0].run_id} ({span}); nothing copied", err=True
        )
        return
    click.echo(f"collected {len(written)} {agent} file(s) active {span} into {runs[0].traces_path}", err=True)
