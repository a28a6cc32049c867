"""`agentcap scan`: the export's secret-scan gate, standalone, for security reviewers.

Exit codes: 0 clean (or only non-blocking findings), 1 blocking findings, 2 the scan could not run.
The scanner flags here are shared with `agentcap export` through `scanner_options`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from exporter.options import run_targets
from exporter.runs import resolve_targets
from exporter.scan.gate import BlockOn, ScanOptions, scan_runs
from exporter.scan.registry import DEFAULT_SCANNER, ready_scanner, scanner_names
from exporter.scan.report import render_result, report_dict
from exporter.tables import output_console

SCANNER_ENV = "AGENTCAP_SCANNER"
EXIT_BLOCKED = 1


def scanner_options[F: Callable[..., Any]](command: F) -> F:
    """--scanner, --block-on, --no-verify, --rescan: the same meaning for `scan` and `export`."""
    decorators = [
        click.option(
            "--scanner",
            type=click.Choice(scanner_names()),
            default=DEFAULT_SCANNER,
            show_default=True,
            envvar=SCANNER_ENV,
            help=f"Secret scanner to run (env {SCANNER_ENV}).",
        ),
        click.option(
            "--block-on",
            type=click.Choice(["verified", "any"]),
            default=None,
            help="Findings that block: verified hits (default) or any hit (the default with --no-verify).",
        ),
        click.option(
            "--no-verify",
            is_flag=True,
            help="Never send candidates to their issuers to check them (offline; see docs/scan.md).",
        ),
        click.option("--rescan", is_flag=True, help="Ignore cached scan results and scan again."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def scan_options_from(*, scanner: str, block_on: str | None, no_verify: bool, rescan: bool) -> ScanOptions:
    return ScanOptions(
        scanner=scanner,
        verify=not no_verify,
        block_on=cast("BlockOn | None", block_on),
        rescan=rescan,
    )


@click.command("scan")
@run_targets("Scan")
@scanner_options
@click.option("--json", "as_json", is_flag=True, help="Print the masked report as JSON on stdout.")
def scan_command(
    targets: tuple[str, ...],
    all_runs: bool,
    runs_dir: Path,
    scanner: str,
    block_on: str | None,
    no_verify: bool,
    rescan: bool,
    as_json: bool,
) -> None:
    """Scan runs for secrets exactly as `agentcap export` would, without exporting anything.

    TARGET is a directory holding runs, one run directory, or a run id under --runs-dir.
    Exit 0: nothing blocks; 1: blocking findings; 2: the scan could not run.
    """
    options = scan_options_from(scanner=scanner, block_on=block_on, no_verify=no_verify, rescan=rescan)
    ready_scanner(options.scanner)  # a missing scanner is the first thing said, before any run is read
    runs = resolve_targets(targets, all_runs=all_runs, runs_dir=runs_dir)
    result = scan_runs(runs, options)
    if as_json:
        click.echo(json.dumps(report_dict(result), indent=2, ensure_ascii=False))
    else:
        render_result(result, output_console())
    if result.blocking():
        raise SystemExit(EXIT_BLOCKED)
