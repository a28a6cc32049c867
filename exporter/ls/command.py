"""`agentcap ls`: one line per run, from a quick read of its captures (no parquet involved)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from exporter.cli_base import LOCATION, Command, prices_option
from exporter.core.errors import UserError
from exporter.shared import totals_display as display
from exporter.shared.prices import PriceTable, load_prices
from exporter.shared.run_summary import summarize_run
from exporter.shared.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, RunDir, list_runs, open_runs_dir
from exporter.shared.tables import ColumnKind, human_bytes, new_table, output_console
from exporter.shared.totals import Totals, run_facts, totals_of
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
    totals: dict[str, Any] | None = None  # with -l: tokens, cost, latency (exporter.shared.totals)


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


def run_totals(run: RunDir, prices: PriceTable) -> Totals:
    """The run's totals as `agentcap stats` computes them (one more pass over its captures)."""
    return totals_of(run_facts(run, warn=lambda _message: None), prices)


def render_table(
    summaries: list[RunListing], *, long: bool, totals: dict[str, Totals] | None = None
) -> Table:
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
    long_columns: list[tuple[str, ColumnKind]] = [
        *((name, "number") for name in ("input", "cache read", "output", "cost", "p50", "p95")),
        ("upstreams", "text"),
        ("provider", "text"),
    ]
    columns += long_columns if long else []
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
            run = (totals or {}).get(summary.run_id) or Totals()
            usage = run.usage
            cells += [
                display.tokens(usage.input_tokens),
                display.tokens(usage.cache_read_tokens),
                display.tokens(usage.output_tokens),
                display.cost(run),
                display.millis(run.p50_ms),
                display.millis(run.p95_ms),
                ", ".join(summary.upstreams) or "-",
                ", ".join(summary.providers) or "-",
            ]
        table.add_row(*cells)
    return table


@click.command("ls", cls=Command)
@click.argument("runs_dir", required=False, type=LOCATION, envvar=RUNS_DIR_ENV)
@click.option(
    "-l", "--long", is_flag=True, help="Also show tokens, cost, p50/p95 latency, upstreams and providers."
)
@prices_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (every field) instead of a table.")
def ls_command(runs_dir: Location | None, long: bool, prices: Path | None, as_json: bool) -> None:
    """List the recorded runs in RUNS_DIR (default: $AGENTCAP_RUNS_DIR or ./runs), or at a URL (s3://…)."""
    runs_dir = runs_dir or Path(DEFAULT_RUNS_DIR)
    location = open_runs_dir(runs_dir)
    if not location.is_dir():
        # Not "no runs": a mistyped path must not look like an empty listing to a script.
        raise UserError(
            f"{runs_dir}: no such directory; record a run with `mitmdump -s addons/agentcap.py`, "
            f"or name the runs dir (agentcap ls DIR, or ${RUNS_DIR_ENV})"
        )
    runs = list_runs(location)
    summaries = [list_run(run) for run in runs]
    totals: dict[str, Totals] = {}
    if long:
        table = load_prices(prices)
        totals = {run.run_id: run_totals(run, table) for run in runs}
        summaries = [replace(s, totals=totals[s.run_id].as_json()) for s in summaries]
    if as_json:
        click.echo(json.dumps([asdict(summary) for summary in summaries], indent=2))
        return
    if not summaries:
        click.echo(f"no runs in {runs_dir}")
        return
    console = output_console()
    console.print(render_table(summaries, long=long, totals=totals))
    for summary in summaries:
        if summary.problem:
            console.print(f"[yellow]{escape(summary.run_id)}:[/] {escape(summary.problem)}", highlight=False)
