"""`agentcap ls`: one line per run, from a quick read of its captures (no parquet involved)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from exporter.captures import index_run
from exporter.errors import UserError
from exporter.naming import provider_for
from exporter.options import LOCATION
from exporter.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, RunDir, list_runs, open_runs_dir
from exporter.storage import Location
from exporter.summary import human_bytes
from exporter.tables import ColumnKind, new_table, output_console


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    agent: str
    status: str | None
    models: list[str]
    calls: int
    errors: int
    tasks: int
    started: str | None  # ISO-8601 UTC
    size_bytes: int
    upstreams: list[str]
    providers: list[str]
    path: str
    problem: str | None = None  # set when the captures could not be read


def summarize(run: RunDir) -> RunSummary:
    problem = None
    try:
        index = index_run(run, warn=lambda _message: None)
    except UserError as error:
        index, problem = None, error.message
    groups = list(index.groups.values()) if index else []
    started = run.info.get("started_at")
    if not started and index and index.first_captured_at is not None:
        started = datetime.fromtimestamp(index.first_captured_at, UTC).isoformat(timespec="seconds")
    return RunSummary(
        run_id=run.run_id,
        agent=run.agent,
        status=run.info.get("status"),
        models=index.models if index else [],
        calls=index.calls if index else 0,
        errors=index.errors if index else 0,
        tasks=len(index.tasks) if index else 0,
        started=started,
        size_bytes=sum(path.stat().st_size for path in run.path.rglob("*") if path.is_file()),
        upstreams=index.upstreams if index else [],
        providers=sorted({provider_for(group.upstream_url, group.model) for group in groups}),
        path=str(run.path),
        problem=problem,
    )


def _started_display(started: str | None) -> str:
    if not started:
        return "-"
    try:
        moment = datetime.fromisoformat(started.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return started
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def render_table(summaries: list[RunSummary], *, long: bool) -> Table:
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


@click.command("ls")
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
    summaries = [summarize(run) for run in list_runs(location)]
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
