"""`agentcap export` / `agentcap-export`: runs → datasets, as explicit stages.

    resolve targets → build (read → rows → parquet → layout, into a staging dir) → scan → publish

Each stage is one call in `run_export`; a new stage or flag is a few lines there. Publishing goes to
`--output` (the same folders a Hub push would create) unless a push is asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from exporter.build import build_export
from exporter.bundle import BuiltExport
from exporter.engines import ENGINES, EngineName, EngineOptions
from exporter.errors import UserError
from exporter.hub import HubPush, connect_hub, parse_push_target, print_push_result, publish_to_hub
from exporter.options import run_targets
from exporter.paths import contained
from exporter.publish_local import publish_local
from exporter.runs import resolve_targets
from exporter.scan.command import scan_options_from, scanner_options
from exporter.scan.gate import ScanOptions, gate_export
from exporter.scan.registry import ready_scanner
from exporter.scan.report import REPORT_FILE
from exporter.staging import private_workdir
from exporter.storage import Location
from exporter.summary import print_summary
from exporter.tables import output_console

DEFAULT_NAME = "local/agentcap"
DEFAULT_OUTPUT = "export"
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HUB_PREFIXES = ("hf://datasets/", "https://huggingface.co/datasets/")


@dataclass(frozen=True)
class ExportOptions:
    targets: tuple[str, ...]
    all_runs: bool
    runs_dir: Location
    output: Path
    owner: str
    base: str
    strict: bool
    scan: ScanOptions | None = field(default_factory=ScanOptions)  # None = --no-scan: loud, noted in cards
    redact: bool = False
    replace: bool = False  # runs already published are replaced (else skipped with a note)
    push: HubPush | None = None  # publish to the Hub instead of --output
    rollouts: bool = False  # also build <base>-rollouts (normalized conversations)
    engine: EngineOptions = field(default_factory=EngineOptions)  # where the per-run tasks run


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
    if options.scan is not None:
        ready_scanner(options.scan.scanner)  # a missing scanner is the first line, before any work
    options.engine.preflight()  # so is an engine that cannot run
    runs = resolve_targets(options.targets, all_runs=options.all_runs, runs_dir=options.runs_dir)
    # Token and endpoint are settled before the build; the first network call comes after the scan.
    hub_api = connect_hub(require_token=not options.push.dry_run) if options.push else None
    # Staged beside the output, private, and removed on every exit we can catch (see exporter.staging).
    with private_workdir(options.output) as staging:
        built = build_export(
            runs,
            owner=options.owner,
            base=options.base,
            staging=staging,
            console=console,
            strict=options.strict,
            scan=options.scan,
            rollouts=options.rollouts,
            engine=options.engine,
        )
        # Nothing is published unless the scan gate passes (it raises otherwise).
        gate_export(
            built,
            options.scan,
            redact=options.redact,
            report_path=contained(options.output, options.owner, REPORT_FILE),
            console=console,
        )
        if options.push and hub_api:
            push = options.push
            pushed = publish_to_hub(
                built,
                api=hub_api,
                public=push.public,
                replace=options.replace,
                dry_run=push.dry_run,
                console=console,
            )
            print_summary(summary, built, pushed.destinations())
            print_push_result(summary, pushed)
        else:
            destinations = publish_local(
                built,
                options.output,
                replace=options.replace,
                note=lambda m: console.print(f"[dim]note:[/] {escape(m)}"),
            )
            print_summary(summary, built, destinations)
    return built


@click.command("export")
@run_targets("Export")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Folder that receives <owner>/<dataset>/ folders and <owner>/collection.json.",
)
@click.option(
    "--name", help=f"OWNER/BASE naming the datasets  [default: {DEFAULT_NAME}; with --push: its value]"
)
@click.option(
    "--push",
    "push_to",
    metavar="OWNER/BASE",
    help="Publish to the Hugging Face Hub (also hf://datasets/OWNER/BASE) instead of --output.",
)
@click.option("--public", is_flag=True, help="With --push: create new repos and the collection public.")
@click.option(
    "--replace", is_flag=True, help="Replace runs already exported/pushed (default: skip them with a note)."
)
@click.option("--dry-run", is_flag=True, help="With --push: print every Hub operation, change nothing.")
@click.option("--strict", is_flag=True, help="Fail on a malformed capture line instead of skipping it.")
@click.option(
    "--scan/--no-scan",
    default=True,
    help="Secret-scan what will be published first (default); --no-scan publishes unscanned, loudly.",
)
@scanner_options
@click.option("--redact", is_flag=True, help="Replace found secrets in the published copies, then re-scan.")
@click.option(
    "--rollouts", is_flag=True, help="Also publish <BASE>-rollouts: traces and captures as conversations."
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Where the per-run work runs: this process, a local process pool, or Ray tasks  "
    "[default: processes for several runs holding 32 MB or more, else local].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Runs built at once (processes: default one per CPU; ray: default the whole cluster).",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    default=None,
    help="With --engine ray: the cluster to join (HOST:PORT, ray://HOST:PORT, or auto for this machine's).",
)
def export_command(
    targets: tuple[str, ...],
    all_runs: bool,
    runs_dir: Location,
    output: Path,
    name: str | None,
    push_to: str | None,
    public: bool,
    replace: bool,
    dry_run: bool,
    strict: bool,
    scan: bool,
    redact: bool,
    rollouts: bool,
    engine: EngineName | None,
    workers: int | None,
    ray_address: str | None,
    **scanner_flags: Any,
) -> None:
    """Export runs as datasets: <BASE>-captures (parquet) and <BASE>-<agent>-traces.

    TARGET is a directory holding runs, one run directory (either one may be a URL: s3://…,
    hf://buckets/…), or a run id under --runs-dir. Without --push, writes under --output exactly
    what a push would publish.
    """
    if not scan and scanner_flags.get("values_file"):
        raise UserError("--redact-values needs the secret scan to find the values; drop --no-scan")
    push = _push_options(name, push_to, public=public, dry_run=dry_run)
    owner, base = (push.target.owner, push.target.base) if push else parse_name(name or DEFAULT_NAME)
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
        replace=replace,
        push=push,
        rollouts=rollouts,
        engine=EngineOptions(engine, workers, ray_address),
    )
    run_export(options, console=output_console(stderr=True), summary=output_console())


def _push_options(name: str | None, push_to: str | None, *, public: bool, dry_run: bool) -> HubPush | None:
    if push_to is None:
        given = [flag for flag, on in (("--public", public), ("--dry-run", dry_run)) if on]
        if given:
            raise UserError(f"{', '.join(given)} only work with --push OWNER/BASE")
        return None
    if name is not None:
        raise UserError("--name and --push both name the datasets; with --push, drop --name")
    return HubPush(parse_push_target(push_to), public=public, dry_run=dry_run)
