"""`agentcap export` / `agentcap-export`: the command line of the export pipeline (`pipeline.py`).

Without --push, writes under --output exactly what a push would publish; `--name` and `--push`
accept the same names (`exporter.core.names.parse_export_name`).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from exporter.cli_base import Command, run_targets, scanner_options
from exporter.core.errors import UserError
from exporter.core.names import parse_export_name
from exporter.engines import ENGINES, EngineName, EngineOptions
from exporter.export.pipeline import ExportOptions, run_export
from exporter.export.publish.stage import HubPush
from exporter.scan.scanners import DEFAULT_SCANNER, scanner_names
from exporter.scan.types import ScanOptions
from exporter.shared.tables import output_console
from exporter.storage import Location

DEFAULT_NAME = "local/agentcap"
DEFAULT_OUTPUT = "export"
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")


@click.command("export", cls=Command)
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
    "--name",
    metavar="OWNER/BASE",
    help=f"Names the datasets, as --push would  [default: {DEFAULT_NAME}; with --push: its value]",
)
@click.option(
    "--push",
    "push_to",
    metavar="OWNER/BASE",
    help="Publish to the Hugging Face Hub instead of --output (also hf://datasets/OWNER/BASE or a Hub URL).",
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
@scanner_options(scanner_names(), DEFAULT_SCANNER)
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
@click.option(
    "--license",
    "license_id",
    metavar="ID",
    help="License of the data for the cards' front matter (a Hub license id: mit, apache-2.0, cc-by-4.0, "
    "other…). Default: none set, and the cards say so.",
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
    license_id: str | None,
    scanner: str,
    block_on: str | None,
    no_verify: bool,
    rescan: bool,
    values_file: Path | None,
    engine: EngineName | None,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """Export runs as datasets: <BASE>-captures (parquet) and <BASE>-<agent>-traces.

    TARGET is a directory holding runs, one run directory (either one may be a URL: s3://…,
    hf://buckets/…), or a run id under --runs-dir. Without --push, writes under --output exactly
    what a push would publish.
    """
    if not scan and values_file is not None:
        raise UserError("--redact-values needs the secret scan to find the values; drop --no-scan")
    push = _push_options(name, push_to, public=public, dry_run=dry_run)
    target = push.target if push else parse_export_name(name or DEFAULT_NAME, option="--name")
    options = ExportOptions(
        targets=targets,
        all_runs=all_runs,
        runs_dir=runs_dir,
        output=output,
        owner=target.owner,
        base=target.name,
        strict=strict,
        scan=ScanOptions.from_flags(
            scanner=scanner, block_on=block_on, no_verify=no_verify, rescan=rescan, values_file=values_file
        )
        if scan
        else None,
        redact=redact,
        replace=replace,
        push=push,
        rollouts=rollouts,
        engine=EngineOptions(engine, workers, ray_address),
        license=_license(license_id),
    )
    run_export(options, console=output_console(stderr=True), summary=output_console())


def _license(value: str | None) -> str | None:
    if value is not None and not _LICENSE_ID.fullmatch(value):
        raise UserError(
            f"--license {value!r}: expected a Hub license id such as mit, apache-2.0 or cc-by-4.0"
        )
    return value


def _push_options(name: str | None, push_to: str | None, *, public: bool, dry_run: bool) -> HubPush | None:
    if push_to is None:
        given = [flag for flag, on in (("--public", public), ("--dry-run", dry_run)) if on]
        if given:
            raise UserError(f"{', '.join(given)} only work with --push OWNER/BASE")
        return None
    if name is not None:
        raise UserError("--name and --push both name the datasets; with --push, drop --name")
    return HubPush(parse_export_name(push_to, option="--push"), public=public, dry_run=dry_run)
