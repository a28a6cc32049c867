"""Export stage 2, the scan gate: scan the runs an export selected, apply the policy, redact if asked.

Returns only when publishing may go on; the policy itself is `exporter.scan.types.ScanOptions`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from exporter.core.errors import AbortExport, UserError
from exporter.export.bundles import BuiltExport
from exporter.export.gate.redact import redact_export
from exporter.scan.engine import ready_scanner, scan_files, scan_runs
from exporter.scan.inputs import scan_targets
from exporter.scan.report import card_section, render_result, write_report
from exporter.scan.types import ScanOptions, ScanResult, ScanTarget


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
    scan_derived(built, result, workdir=built.staging)
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


# Bundles whose files the build wrote from the runs' contents (decoded streams, joined deltas,
# unwrapped bodies) rather than copied: they are scanned as they will be published.
DERIVED_TEXT_BUNDLES = ("sessions",)


def scan_derived(built: BuiltExport, result: ScanResult, *, workdir: Path) -> None:
    """Scan the staged derived text files too (with their decoded views), adding their findings to
    the run each came from. Never cached: every export rebuilds them (the runs' own results are)."""
    bundles = [bundle for bundle in built.bundles if bundle.kind in DERIVED_TEXT_BUNDLES and bundle.files]
    if not bundles:
        return
    ready = ready_scanner(result.options.scanner)
    targets: list[ScanTarget] = []
    for number, bundle in enumerate(bundles):
        files = [(bundle.local_path(file), file.path) for file in bundle.files]
        root = bundle.folder.resolve()
        targets += scan_targets(
            files, root=root, owner=bundle.name, views=workdir / "derived-views" / str(number)
        )
    per_root, secrets = scan_files(
        ready.adapter, ready.binary, targets, verify=result.options.verify, known=result.options.known
    )
    result.secrets.merge(secrets)
    by_run = {run.run_id: run for run in result.runs}
    for bundle in bundles:
        run_of = {file.path: file.run_id for file in bundle.files}
        for finding in per_root.get(bundle.folder.resolve(), []):
            by_run[run_of[finding.file]].findings.append(
                replace(finding, file=f"{bundle.name}/{finding.file}")
            )


def annotate_cards(built: BuiltExport, result: ScanResult | None) -> None:
    """Give the cards what they say about the scan: this export's scan section, and each run's result
    (kept in the repo's index, so a card counts the results of every run it holds)."""
    built.scan_section = card_section(result)
    for run in built.runs:
        built.card_scans[run.run_id] = {"result": "not scanned", "scanner": None}
    for scanned in result.runs if result else []:
        outcome = (
            "redacted"
            if result is not None and result.redaction and scanned.findings
            else "passed with findings"
            if scanned.findings
            else "clean"
        )
        built.card_scans[scanned.run_id] = {
            "result": outcome,
            "scanner": f"{result.options.scanner} {result.scanner_version}" if result else None,
            "findings": len(scanned.findings),
        }
