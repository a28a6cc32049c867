"""`agentcap export` / `agentcap-export`: runs → datasets, as explicit stages.

    resolve targets → build (read → rows → parquet → layout, into a staging dir) → scan → publish

Each stage is one call in `run_export`; a new stage or flag is a few lines there. Publishing goes to
`--output` (the same folders a Hub push would create) unless a push is asked for.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from exporter.build import build_export
from exporter.bundle import BuiltExport
from exporter.errors import UserError
from exporter.publish_local import publish_local
from exporter.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, resolve_targets
from exporter.scan.command import scan_options_from, scanner_options
from exporter.scan.gate import ScanOptions, gate_export
from exporter.scan.report import REPORT_FILE
from exporter.summary import print_summary

DEFAULT_NAME = "local/agentcap"
DEFAULT_OUTPUT = "export"
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HUB_PREFIXES = ("hf://datasets/", "https://huggingface.co/datasets/")


@dataclass(frozen=True)
class ExportOptions:
    targets: tuple[str, ...]
    all_runs: bool
    runs_dir: Path
    output: Path
    owner: str
    base: str
    strict: bool
    scan: ScanOptions | None = field(default_factory=ScanOptions)  # None = --no-scan: loud, noted in cards
    redact: bool = False


def parse_name(name: str) -> tuple[str, str]:
    """`OWNER/BASE` (an `hf://datasets/` prefix is accepted) → (owner, base)."""
    for prefix in _HUB_PREFIXES:
        name = name.removeprefix(prefix)
    owner, _, base = name.strip("/").partition("/")
    if not (_NAME_PART.fullmatch(owner) and _NAME_PART.fullmatch(base)):
        raise UserError(
            f"--name {name!r}: expected OWNER/BASE of letters, digits, '.', '_', '-' (e.g. my-org/agent-runs)"
        )
    return owner, base


def run_export(options: ExportOptions, *, console: Console, summary: Console) -> BuiltExport:
    """The pipeline. `console` gets progress and warnings (stderr), `summary` the final table."""
    runs = resolve_targets(options.targets, all_runs=options.all_runs, runs_dir=options.runs_dir)
    with tempfile.TemporaryDirectory(prefix="agentcap-export-") as staging:
        built = build_export(
            runs,
            owner=options.owner,
            base=options.base,
            staging=Path(staging),
            console=console,
            strict=options.strict,
        )
        # Nothing is published unless the scan gate passes (it raises otherwise).
        gate_export(
            built,
            options.scan,
            redact=options.redact,
            report_path=options.output / options.owner / REPORT_FILE,
            console=console,
        )
        destinations = publish_local(built, options.output)
        print_summary(summary, built, destinations)
    return built


@click.command("export")
@click.argument("targets", nargs=-1)
@click.option("--all", "all_runs", is_flag=True, help="Export every run in the runs dir.")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=RUNS_DIR_ENV,
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    help=f"Where run ids and --all are looked up (env {RUNS_DIR_ENV}).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Folder that receives <owner>/<dataset>/ folders and <owner>/collection.json.",
)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="OWNER/BASE naming the datasets.")
@click.option("--strict", is_flag=True, help="Fail on a malformed capture line instead of skipping it.")
@click.option(
    "--scan/--no-scan",
    default=True,
    help="Secret-scan what will be published first (default); --no-scan publishes unscanned, loudly.",
)
@scanner_options
@click.option("--redact", is_flag=True, help="Replace found secrets in the published copies, then re-scan.")
def export_command(
    targets: tuple[str, ...],
    all_runs: bool,
    runs_dir: Path,
    output: Path,
    name: str,
    strict: bool,
    scan: bool,
    redact: bool,
    **scanner_flags: Any,
) -> None:
    """Export runs as datasets: <BASE>-captures (parquet) and <BASE>-<agent>-traces.

    TARGET is a directory holding runs, one run directory, or a run id under --runs-dir.
    Without --push, writes under --output exactly what a push would publish.
    """
    owner, base = parse_name(name)
    options = ExportOptions(
        targets=targets,
        all_runs=all_runs,
        runs_dir=runs_dir,
        output=output,
        owner=owner,
        base=base,
        strict=strict,
        scan=scan_options_from(**scanner_flags) if scan else None,
        redact=redact,
    )
    run_export(options, console=Console(stderr=True), summary=Console())
