"""`agentcap stats [TARGET]`: tokens, cost, failures and latency per run, task and model."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from exporter.cli_base import Command, browse_target_options, prices_option
from exporter.inspect.targets import calls_source
from exporter.shared import totals_display as display
from exporter.shared.prices import load_prices
from exporter.shared.runs import default_runs_dir
from exporter.shared.tables import ColumnKind, new_table, output_console
from exporter.shared.totals import Stats, Totals, compute_stats, iso
from exporter.stats.sources import source_facts

TOTALS_COLUMNS: list[tuple[str, ColumnKind]] = [(name, "number") for name in display.TOTALS_HEADINGS]


@click.command("stats", cls=Command)
@click.argument("target", required=False)
@browse_target_options("run ids")
@prices_option
@click.option("--json", "as_json", is_flag=True, help="Print the totals as one JSON object.")
def stats_command(
    target: str | None, runs_dir: Path | None, prices: Path | None, revision: str | None, as_json: bool
) -> None:
    """Tokens, cost, failed calls and latency of recorded calls, per run, task and model.

    TARGET is what `agentcap inspect` takes: nothing (the runs dir), a runs dir, a run directory or
    run id, a captures .parquet file, or hf://datasets/OWNER/NAME. Costs come from --prices FILE,
    else from the shipped table of list prices (an estimate); a model without a price shows
    "no price", never $0.
    """
    table = load_prices(prices)
    source = calls_source(target, runs_dir=runs_dir or default_runs_dir(), revision=revision)
    stats = compute_stats(source_facts(source), table)
    if as_json:
        click.echo(json.dumps(stats.as_json(), indent=2, ensure_ascii=False))
        return
    print_stats(output_console(), stats, title=source.title)


def print_stats(console: Console, stats: Stats, *, title: str) -> None:
    total = stats.total
    if not total.calls:
        console.print(f"no calls in {escape(title)}", highlight=False)
        return
    span = f"{iso(total.first_at)} → {iso(total.last_at)}" if total.first_at is not None else "-"
    console.print(
        f"[bold]{escape(title)}[/]: {total.calls} calls in {len(total.runs)} run(s), "
        f"{total.failed} failed; {span}",
        highlight=False,
    )
    console.print(f"tokens: {display.token_summary(total)}", highlight=False)
    console.print(
        f"cost: {display.cost(total)}  (prices: {escape(stats.prices.describe())})  "
        f"latency p50 {display.millis(total.p50_ms)}, p95 {display.millis(total.p95_ms)}",
        highlight=False,
    )
    _table(console, "per run", [("run", "id")], {(run,): t for run, t in stats.runs.items()})
    _table(
        console,
        "per task",
        [("run", "id"), ("task", "id")],
        {(run, task or "(untagged)"): t for (run, task), t in stats.tasks.items()},
    )
    _table(console, "per model", [("model", "id")], {(model or "-",): t for model, t in stats.models.items()})
    unpriced = sorted(model or "-" for model, t in stats.models.items() if t.unpriced)
    if unpriced:
        console.print(
            f"no price for: {escape(', '.join(unpriced))} (pass --prices FILE; see docs/stats.md#prices)",
            highlight=False,
        )


def _table(
    console: Console, title: str, keys: list[tuple[str, ColumnKind]], rows: dict[tuple[str, ...], Totals]
) -> None:
    console.print(f"\n[italic]{title}[/]")
    table = new_table([*keys, *TOTALS_COLUMNS], box=None, header_style="bold", pad_edge=False)
    for key, totals in sorted(rows.items()):
        table.add_row(*key, *display.totals_cells(totals), style="red" if totals.failed else None)
    console.print(table)
