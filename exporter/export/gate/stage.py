"""Export stage 2, the scan gate: scan the runs an export selected, apply the policy, redact if asked.

Returns only when publishing may go on; the policy itself is `exporter.scan.types.ScanOptions`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from exporter.core.errors import AbortExport, UserError
from exporter.export.bundles import CARD_FILE, BuiltExport
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


def annotate_cards(built: BuiltExport, result: ScanResult | None) -> None:
    """Append the scan section to each staged card (file and bundle), so what is published carries it."""
    section = card_section(result)
    for index, bundle in enumerate(built.bundles):
        card = bundle.card.rstrip("\n") + "\n\n" + section
        (bundle.folder / CARD_FILE).write_text(card, encoding="utf-8")
        built.bundles[index] = replace(bundle, card=card)
