"""`agentcap ls`: one line per run, from a quick read of its captures (no parquet involved)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from exporter.cli_base import LOCATION, Command
from exporter.core.errors import UserError
from exporter.shared.run_summary import summarize_run
from exporter.shared.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, RunDir, list_runs, open_runs_dir
from exporter.shared.tables import ColumnKind, human_bytes, new_table, output_console
from exporter.storage import Location


@dataclass(frozen=True)
class RunListing:
    """One run as `agentcap ls` shows it; `--json` prints these fields."""

    run_id: str
    agent: str
    status: str | None
    models: list[str]
    calls: int
    errors: int  # failed calls (exporter.core.record.call_failed), as `inspect` counts them
    tasks: int
    started: str | None  # ISO-8601 UTC
    size_bytes: int
    upstreams: list[str]
    providers: list[str]
    path: str
    problem: str | None = None  # set when the captures could not be read


def list_run(run: RunDir) -> RunListing:
    summary = summarize_run(run)
    started = run.info.started_at
    if not started and summary.first_captured_at is not None:
        started = datetime.fromtimestamp(summary.first_captured_at, UTC).isoformat(timespec="seconds")
    return RunListing(
        run_id=run.run_id,
        agent=run.agent,
        status=run.info.status,
        models=summary.models,
        calls=summary.calls,
        errors=summary.failed,
        tasks=len(summary.tagged_tasks),
        started=started,
        size_bytes=sum(path.stat().st_size for path in run.path.rglob("*") if path.is_file()),
        upstreams=summary.upstreams,
        providers=summary.providers,
        path=str(run.path),
        problem=summary.problem,
    )


def _started_display(started: str | None) -> str:
    if not started:
        return "-"
    try:
        moment = datetime.fromisoformat(started.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return started
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def render_table(summaries: list[RunListing], *, long: bool) -> Table:
    columns: list[tuple[str, ColumnKind]] = [
        ("run id", "id"),
        ("agent", "id"),
        ("models", "text"),
        ("calls", "number"),
        ("errors", "number"),
        ("tasks", "number"),
        ("started (UTC)", "id"),
        ("size", "number"),
    ]
    columns += [("upstreams", "text"), ("provider", "text")] if long else []
    table = new_table(columns, box=None, header_style="bold", pad_edge=False)
    for summary in summaries:
        cells = [
            summary.run_id,
            summary.agent,
            ", ".join(summary.models) or "-",
            "?" if summary.problem else str(summary.calls),
            str(summary.errors),
            str(summary.tasks),
            _started_display(summary.started),
            human_bytes(summary.size_bytes),
        ]
        if long:
            cells += [", ".join(summary.upstreams) or "-", ", ".join(summary.providers) or "-"]
        table.add_row(*cells)
    return table


@click.command("ls", cls=Command)
@click.argument("runs_dir", required=False, type=LOCATION, envvar=RUNS_DIR_ENV)
@click.option("-l", "--long", is_flag=True, help="Also show upstreams and providers.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (every field) instead of a table.")
def ls_command(runs_dir: Location | None, long: bool, as_json: bool) -> None:
    """List the recorded runs in RUNS_DIR (default: $AGENTCAP_RUNS_DIR or ./runs), or at a URL (s3://…)."""
    runs_dir = runs_dir or Path(DEFAULT_RUNS_DIR)
    location = open_runs_dir(runs_dir)
    if not location.is_dir():
        # Not "no runs": a mistyped path must not look like an empty listing to a script.
        raise UserError(
            f"{runs_dir}: no such directory; record a run with `mitmdump -s addons/agentcap.py`, "
            f"or name the runs dir (agentcap ls DIR, or ${RUNS_DIR_ENV})"
        )
    summaries = [list_run(run) for run in list_runs(location)]
    if as_json:
        click.echo(json.dumps([asdict(summary) for summary in summaries], indent=2))
        return
    if not summaries:
        click.echo(f"no runs in {runs_dir}")
        return
    console = output_console()
    console.print(render_table(summaries, long=long))
    for summary in summaries:
        if summary.problem:
            console.print(f"[yellow]{escape(summary.run_id)}:[/] {escape(summary.problem)}", highlight=False)
