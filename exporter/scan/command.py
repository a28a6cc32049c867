"""`agentcap scan`: the export's secret-scan gate, standalone, for security reviewers.

Exit codes: 0 clean (or only non-blocking findings), 1 blocking findings, 2 the scan could not run.
The scanner flags here are shared with `agentcap export` through `scanner_options`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from exporter.options import run_targets
from exporter.runs import resolve_targets
from exporter.scan.gate import BlockOn, ScanOptions, scan_runs
from exporter.scan.known import known_values
from exporter.scan.registry import DEFAULT_SCANNER, ready_scanner, scanner_names
from exporter.scan.report import render_result, report_dict
from exporter.staging import private_workdir
from exporter.tables import output_console

SCANNER_ENV = "AGENTCAP_SCANNER"
EXIT_BLOCKED = 1


def scanner_options[F: Callable[..., Any]](command: F) -> F:
    """--scanner, --block-on, --no-verify, --rescan, --redact-values: the same for `scan` and `export`."""
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
        click.option(
            "--redact-values",
            "values_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File of exact values (one per line) that must never be published: found like verified "
            "secrets (they block), replaced by --redact. This machine's credential env vars always count.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def scan_options_from(
    *, scanner: str, block_on: str | None, no_verify: bool, rescan: bool, values_file: Path | None
) -> ScanOptions:
    return ScanOptions(
        scanner=scanner,
        verify=not no_verify,
        block_on=cast("BlockOn | None", block_on),
        rescan=rescan,
        known=known_values(values_file=values_file),
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
    values_file: Path | None,
    as_json: bool,
) -> None:
    """Scan runs for secrets exactly as `agentcap export` would, without exporting anything.

    TARGET is a directory holding runs, one run directory, or a run id under --runs-dir.
    Exit 0: nothing blocks; 1: blocking findings; 2: the scan could not run.
    """
    options = scan_options_from(
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
