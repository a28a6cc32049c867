"""`agentcap report [TARGET] -o report.html`: one self-contained HTML file to share a run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from rich.markup import escape

from exporter.cli_base import SCANNER_ENV, Command, browse_target_options, prices_option
from exporter.core.errors import UserError
from exporter.inspect.targets import calls_source
from exporter.report.mask import mask_secrets
from exporter.report.model import build_report, load_calls
from exporter.report.render import render
from exporter.scan.engine import ready_scanner
from exporter.scan.scanners import scanner_names
from exporter.scan.types import DEFAULT_SCANNER
from exporter.shared.prices import load_prices
from exporter.shared.runs import default_runs_dir
from exporter.shared.tables import output_console

NOT_SCANNED = "NOT SCANNED (--no-scan): secrets in these calls are shown as recorded"


@click.command("report", cls=Command)
@click.argument("target", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@browse_target_options("run ids")
@prices_option
@click.option(
    "--scan-report",
    "scan_reports",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A scan-report.json whose findings to show on their calls (default: the run's last scan).",
)
@click.option(
    "--scanner",
    type=click.Choice(scanner_names()),
    default=DEFAULT_SCANNER,
    show_default=True,
    envvar=SCANNER_ENV,
    help=f"Secret scanner that masks the report (env {SCANNER_ENV}).",
)
@click.option(
    "--no-scan", is_flag=True, help="Write the report without masking secrets (it says so, loudly)."
)
def report_command(
    target: str | None,
    output: Path,
    runs_dir: Path | None,
    prices: Path | None,
    revision: str | None,
    scan_reports: tuple[Path, ...],
    scanner: str,
    no_scan: bool,
) -> None:
    """Write one HTML file showing recorded calls: totals, charts, and every call of every task.

    TARGET is what `agentcap inspect` takes: nothing (the runs dir), a runs dir, a run directory or
    run id, a captures .parquet file, or hf://datasets/OWNER/NAME. The file needs no network and no
    JavaScript to read (search works with it). Secrets the scanner finds in the page are masked
    before it is written; without a scanner nothing is written (--no-scan overrides, loudly).
    """
    console = output_console(stderr=True)
    ready = None if no_scan else ready_scanner(scanner)  # a missing scanner is the first thing said
    table = load_prices(prices)
    source = calls_source(target, runs_dir=runs_dir or default_runs_dir(), revision=revision)
    calls = load_calls(
        source, reports=list(scan_reports), warn=lambda m: console.print(f"warning: {escape(m)}")
    )
    if not calls:
        raise UserError(f"{source.title}: no recorded calls; nothing to report")
    report = build_report(source.title, calls, table)
    if ready is None:
        page = render(report, scan_note=NOT_SCANNED)
        console.print(f"[bold red]WARNING: {NOT_SCANNED}[/]")
    else:
        # The note names the scanner before the scan; a page that needs masking is masked after.
        page, masking = mask_secrets(
            render(report, scan_note=f"secrets masked by {ready.adapter.name}"), ready
        )
        console.print(masking.describe(), highlight=False)
    _write(output, page)
    console.print(
        f"wrote {output} ({len(report.calls)} calls, {len(report.sections)} tasks, "
        f"{len(page.encode()) / 1e6:.1f} MB)",
        highlight=False,
    )


def _write(output: Path, page: str) -> None:
    """Atomically: a reader never opens a half-written report."""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{output}: no such directory {folder}; create it or pick another -o")
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(temporary, output)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise UserError(f"{output}: cannot write it ({error.strerror or error})") from error
