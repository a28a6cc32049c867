"""Export stage 2, the scan gate: scan the runs an export selected, apply the policy, redact if asked.

Returns only when publishing may go on; the policy itself is `exporter.scan.types.ScanOptions`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from exporter.core.errors import AbortExport, UserError
from exporter.export.bundles import BuiltExport
from exporter.export.gate.redact import redact_export
from exporter.scan.engine import scan_runs
from exporter.scan.report import card_section, render_result, write_report
from exporter.scan.types import ScanOptions, ScanResult


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
    result = scan_runs(built.runs, options, workdir=built.staging, need_secrets=redact)
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


def annotate_cards(built: BuiltExport, result: ScanResult | None) -> None:
    """Give the cards what they say about the scan: this export's scan section, and each run's result
    (kept in the repo's index, so a card counts the results of every run it holds)."""
    built.scan_section = card_section(result)
    for run in built.runs:
        built.scans[run.run_id] = {"result": "not scanned", "scanner": None}
    for scanned in result.runs if result else []:
        outcome = (
            "redacted"
            if result is not None and result.redaction and scanned.findings
            else "passed with findings"
            if scanned.findings
            else "clean"
        )
        built.scans[scanned.run_id] = {
            "result": outcome,
            "scanner": f"{result.options.scanner} {result.scanner_version}" if result else None,
            "findings": len(scanned.findings),
        }
