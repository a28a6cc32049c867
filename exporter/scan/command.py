"""`agentcap scan`: the export's secret-scan gate, standalone, for security reviewers.

Exit codes: 0 clean (or only non-blocking findings), 1 blocking findings, 2 the scan could not run.
The scanner flags are shared with `agentcap export` (`exporter.cli_base.scanner_options`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from exporter.cli_base import Command, run_targets, scanner_options
from exporter.scan.engine import ready_scanner, scan_runs
from exporter.scan.report import render_result, report_dict
from exporter.scan.scanners import DEFAULT_SCANNER, scanner_names
from exporter.scan.types import ScanOptions
from exporter.shared.runs import resolve_targets
from exporter.shared.staging import private_workdir
from exporter.shared.tables import output_console

EXIT_BLOCKED = 1


@click.command("scan", cls=Command)
@run_targets("Scan")
@scanner_options(scanner_names(), DEFAULT_SCANNER)
@click.option("--json", "as_json", is_flag=True, help="Print the masked report as JSON on stdout.")
def scan_command(
    targets: tuple[str, ...],
    all_runs: bool,
    runs_dir: Path,
    scanner: str,
    block_on: str | None,
    no_verify: bool,
    rescan: bool,
    values_file: Path | None,
    as_json: bool,
) -> None:
    """Scan runs for secrets exactly as `agentcap export` would, without exporting anything.

    TARGET is a directory holding runs, one run directory, or a run id under --runs-dir.
    Exit 0: nothing blocks; 1: blocking findings; 2: the scan could not run.
    """
    options = ScanOptions.from_flags(
        scanner=scanner, block_on=block_on, no_verify=no_verify, rescan=rescan, values_file=values_file
    )
    ready_scanner(options.scanner)  # a missing scanner is the first thing said, before any run is read
    runs = resolve_targets(targets, all_runs=all_runs, runs_dir=runs_dir)
    # The decoded views hold what the runs hold: a private folder, removed however the scan ends.
    with private_workdir(Path(tempfile.gettempdir())) as workdir:
        result = scan_runs(runs, options, workdir=workdir)
    if as_json:
        click.echo(json.dumps(report_dict(result), indent=2, ensure_ascii=False))
    else:
        render_result(result, output_console())
    if result.blocking():
        raise SystemExit(EXIT_BLOCKED)
