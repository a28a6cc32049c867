"""`agentcap export` as explicit stages: runs → datasets.

    resolve targets → build (read → rows → parquet → layout, into a staging dir) → scan gate → publish

Each stage is one call in `run_export` and one folder of this package (`build/`, `gate/`,
`publish/`, each entered through its `stage.py`); they hand each other `bundles.BuiltExport`.
Publishing goes to `output` (the same folders a Hub push would create) unless a push is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from exporter.engines import EngineOptions
from exporter.export.build.sessions_dataset import add_sessions
from exporter.export.build.stage import build_export
from exporter.export.bundles import BuiltExport
from exporter.export.gate.stage import gate_export
from exporter.export.publish.stage import HubPush, publish
from exporter.scan.engine import ready_scanner
from exporter.scan.report import REPORT_FILE
from exporter.scan.types import ScanOptions
from exporter.shared.hub_client import connect_hub
from exporter.shared.paths import contained
from exporter.shared.runs import resolve_targets
from exporter.shared.staging import private_workdir
from exporter.storage import Location


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
    license: str | None = None  # the cards' front matter `license` (None: say none was set)
    engine: EngineOptions = field(default_factory=EngineOptions)  # where the per-run tasks run


def run_export(options: ExportOptions, *, console: Console, summary: Console) -> BuiltExport:
    """The pipeline. `console` gets progress and warnings (stderr), `summary` the final table."""
    if options.scan is not None:
        ready_scanner(options.scan.scanner)  # a missing scanner is the first line, before any work
    options.engine.preflight()  # so is an engine that cannot run
    runs = resolve_targets(options.targets, all_runs=options.all_runs, runs_dir=options.runs_dir)
    # Token and endpoint are settled before the build; the first network call comes after the scan.
    hub_api = connect_hub(require_token=not options.push.dry_run) if options.push else None
    # Staged beside the output, private, and removed on every exit we can catch (see shared.staging).
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
        built.license = options.license
        add_sessions(built)  # the runs' session files, written by their build tasks
        # Nothing is published unless the scan gate passes (it raises otherwise).
        gate_export(
            built,
            options.scan,
            redact=options.redact,
            report_path=contained(options.output, options.owner, REPORT_FILE),
            console=console,
        )
        publish(
            built,
            output=options.output,
            replace=options.replace,
            push=options.push,
            hub_api=hub_api,
            console=console,
            summary=summary,
        )
    return built
