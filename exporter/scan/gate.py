"""The scan gate: scan the runs an export selected, apply the policy, redact if asked, decide.

Policy: a verified hit blocks; pattern-only hits (unverified, unknown) are listed. `--block-on
any` makes every hit block. Without verification nothing can ever be "verified", so `--no-verify`
blocks on any hit unless `--block-on verified` is given explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.console import Console

from exporter.errors import AbortExport, UserError
from exporter.runs import RunDir, local_copies
from exporter.scan.cache import CacheKey, load_cached, store_cached
from exporter.scan.findings import Finding, SecretBook
from exporter.scan.inputs import ScanInputs, scan_inputs, scan_targets
from exporter.scan.known import KnownValues
from exporter.scan.registry import DEFAULT_SCANNER, ReadyScanner, ScanTarget, ready_scanner, scan_files

if TYPE_CHECKING:
    from exporter.bundle import BuiltExport
    from exporter.scan.redact import RedactionSummary

BlockOn = Literal["verified", "any"]
# Bumped whenever the decoded views change what the scanner reads: older cached results are stale.
VIEWS_VERSION = "1"


@dataclass(frozen=True)
class ScanOptions:
    scanner: str = DEFAULT_SCANNER
    verify: bool = True
    block_on: BlockOn | None = None  # None: "verified" when verifying, else "any"
    rescan: bool = False
    known: KnownValues = field(default_factory=KnownValues)  # exact values that must never be published

    @property
    def policy(self) -> BlockOn:
        return self.block_on or ("verified" if self.verify else "any")

    def blocks(self, finding: Finding) -> bool:
        return self.policy == "any" or finding.status == "verified"

    def describe(self) -> str:
        blocking = "every hit blocks" if self.policy == "any" else "verified hits block, others are listed"
        verification = "candidates verified with their issuers" if self.verify else "offline, no verification"
        return f"{blocking}; {verification}"

    def cache_options(self) -> tuple[tuple[str, str], ...]:
        # Only what changes the findings; the policy is applied afterwards.
        return (
            ("verify", str(self.verify).lower()),
            ("decoded-views", VIEWS_VERSION),
            ("known-values", self.known.digest),
        )


@dataclass
class RunScan:
    run_id: str
    inputs: ScanInputs
    findings: list[Finding]
    cached: bool


@dataclass
class ScanResult:
    options: ScanOptions
    scanner_version: str
    runs: list[RunScan]
    secrets: SecretBook = field(default_factory=SecretBook, repr=False)
    redaction: RedactionSummary | None = None

    def findings(self) -> list[tuple[str, Finding]]:
        return [(run.run_id, finding) for run in self.runs for finding in run.findings]

    def blocking(self) -> list[tuple[str, Finding]]:
        if self.redaction is not None:
            return []  # every finding was replaced in the published copies and a re-scan came back clean
        return [(run_id, finding) for run_id, finding in self.findings() if self.options.blocks(finding)]

    @property
    def decision(self) -> str:
        if self.redaction is not None:
            return "redacted"
        if self.blocking():
            return "blocked"
        return "passed with findings" if self.findings() else "clean"


def scan_runs(
    runs: Sequence[RunDir],
    options: ScanOptions,
    *,
    workdir: Path,
    need_secrets: bool = False,
    known: Mapping[str, RunScan] | None = None,
) -> ScanResult:
    """Scan each run's published plain text, reusing cached results where content and settings match.

    The decoded views are written under `workdir` (private: they hold what the runs hold).
    `known` holds results the export's per-run tasks already got (by run id): used as they are.
    `need_secrets` (for --redact) rescans runs whose cached or known result has findings: those
    hold hashes, and redaction needs the secrets themselves, which only a live scan hands over.
    Runs under a URL are scanned in a local copy of what is published (exporter.runs.local_copies).
    """
    ready = ready_scanner(options.scanner)
    results: dict[int, RunScan] = {}
    for position, run in enumerate(runs):
        prior = (known or {}).get(run.run_id)
        if prior is not None and not (need_secrets and prior.findings):
            results[position] = prior
    rest = [position for position in range(len(runs)) if position not in results]
    with local_copies([runs[position] for position in rest]) as local:
        scanned, secrets = _scan_local(local, options, ready, workdir=workdir, need_secrets=need_secrets)
    results.update(zip(rest, scanned, strict=True))
    ordered = [results[position] for position in range(len(runs))]
    return ScanResult(options=options, scanner_version=ready.version, runs=ordered, secrets=secrets)


def _scan_local(
    runs: Sequence[RunDir], options: ScanOptions, ready: ReadyScanner, *, workdir: Path, need_secrets: bool
) -> tuple[list[RunScan], SecretBook]:
    scanner, binary, version = ready.adapter, ready.binary, ready.version
    keys: dict[Path, CacheKey] = {}
    results: dict[Path, RunScan] = {}
    pending: list[tuple[RunDir, ScanInputs]] = []
    for run in runs:
        inputs = scan_inputs(run)
        key = CacheKey(inputs.content_sha256, scanner.name, version, options.cache_options())
        keys[inputs.root] = key
        cached = None if options.rescan else load_cached(inputs.root, key)
        if cached is not None and not (need_secrets and cached):
            results[inputs.root] = RunScan(run.run_id, inputs, cached, cached=True)
        else:
            pending.append((run, inputs))
    targets: list[ScanTarget] = []
    for number, (run, inputs) in enumerate(pending):
        files = [(file, file.relative_to(inputs.root).as_posix()) for file in inputs.files]
        targets += scan_targets(
            files, root=inputs.root, owner=run.run_id, views=workdir / "views" / str(number)
        )
    per_root, secrets = scan_files(scanner, binary, targets, verify=options.verify, known=options.known)
    for run, inputs in pending:
        findings = per_root.get(inputs.root, [])
        store_cached(inputs.root, keys[inputs.root], findings)
        results[inputs.root] = RunScan(run.run_id, inputs, findings, cached=False)
    return [results[Path(run.path).resolve()] for run in runs], secrets


def gate_export(
    built: BuiltExport,
    options: ScanOptions | None,
    *,
    redact: bool,
    report_path: Path | None,
    console: Console,
) -> ScanResult | None:
    """The export's scan stage, between build and publish. Returns only when publishing may go on.

    `options=None` is `--no-scan`: said loudly and recorded in the cards. Blocking findings write
    the report and raise AbortExport; so does a redaction the re-scan does not confirm.
    """
    from exporter.scan.redact import redact_export
    from exporter.scan.report import annotate_cards, render_result, write_report

    if options is None:
        if redact:
            raise UserError("--redact needs the secret scan to know what to replace; drop --no-scan")
        console.print(
            "[bold red]WARNING: --no-scan: publishing without a secret scan. Captures and traces hold "
            "whatever the agent saw (env dumps, config files, keys).[/]"
        )
        annotate_cards(built, None)
        return None
    result = scan_runs(built.runs, options, workdir=built.staging, need_secrets=redact, known=built.scans)
    if redact and result.findings():
        result.redaction = redact_export(built, result, console=console)
    render_result(result, console)
    if report_path is not None:
        write_report(result, report_path)
        console.print(f"scan report (masked): {report_path}")
    blocking = result.blocking()
    if blocking:
        live = sum(1 for _, finding in blocking if finding.status == "verified")
        raise AbortExport(
            f"secret scan blocked the export: {len(blocking)} blocking finding(s) in "
            f"{len({run_id for run_id, _ in blocking})} run(s) (policy: {options.describe()}); "
            + (f"rotate the {live} verified credential(s) now, they are live; " if live else "")
            + "remove the secrets from the runs, or export with --redact to replace them in the published copies"
        )
    annotate_cards(built, result)
    return result
