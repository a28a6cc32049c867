"""How a scan result is shown: rich tables, the masked scan-report.json, the dataset-card section.

Everything here works from `Finding`s (hash + masked preview); the raw secrets are not reachable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from exporter.scan.findings import STATUSES
from exporter.scan.types import ScanResult
from exporter.shared.tables import new_table

REPORT_SCHEMA = "agentcap.scan-report/1"
REPORT_FILE = "scan-report.json"  # written to <output>/<owner>/, never published
CARD_HEADING = "## Secret scan"
_STATUS_STYLE = {"verified": "bold red", "unknown": "yellow", "unverified": "yellow"}


def render_result(result: ScanResult, console: Console) -> None:
    for run in result.runs:
        if not run.findings:
            continue
        # A heading line, not the table's title: a title wraps at the table's width, cutting the run id.
        console.print(f"[italic]secrets in run {escape(run.run_id)}[/]", highlight=False)
        table = new_table(
            (column, "id") for column in ("detector", "file:line", "status", "preview", "blocks")
        )
        for finding in run.findings:
            style = _STATUS_STYLE[finding.status]
            blocks = "redacted" if result.redaction else ("yes" if result.options.blocks(finding) else "no")
            table.add_row(
                escape(finding.detector),
                escape(finding.location),
                f"[{style}]{finding.status}[/]",
                finding.preview,
                blocks,
            )
        console.print(table)
    summary = new_table(
        [
            ("run", "id"),
            *((column, "number") for column in ("files", "bytes", *STATUSES, "blocking")),
            ("result from", "id"),
        ],
        title=f"secret scan: {result.options.scanner} {result.scanner_version}",
        title_justify="left",
    )
    blocking_runs = [run_id for run_id, _ in result.blocking()]
    for run in result.runs:
        counts = [sum(1 for finding in run.findings if finding.status == status) for status in STATUSES]
        summary.add_row(
            escape(run.run_id),
            str(len(run.inputs.files)),
            f"{run.inputs.bytes:,}",
            *map(str, counts),
            str(blocking_runs.count(run.run_id)),
            "cache" if run.cached else "scan",
        )
    console.print(summary)
    console.print(f"policy: {result.options.describe()} → [bold]{result.decision}[/]")
    if not result.options.verify and result.options.policy == "verified":
        console.print("[yellow]note:[/] --no-verify with --block-on verified: no finding can block")
    if result.redaction is not None:
        console.print(result.redaction.describe())


def report_dict(result: ScanResult) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scanner": result.options.scanner,
        "scanner_version": result.scanner_version,
        "policy": {"block_on": result.options.policy, "verify": result.options.verify},
        "decision": result.decision,
        "blocking": len(result.blocking()),
        "redaction": None if result.redaction is None else result.redaction.to_dict(),
        "runs": [
            {
                "run_id": run.run_id,
                "files": len(run.inputs.files),
                "bytes": run.inputs.bytes,
                "content_sha256": run.inputs.content_sha256,
                "from_cache": run.cached,
                "findings": [
                    finding.to_dict() | {"blocks": result.options.blocks(finding)} for finding in run.findings
                ],
            }
            for run in result.runs
        ],
    }


def write_report(result: ScanResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_dict(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def card_section(result: ScanResult | None) -> str:
    if result is None:
        return f"{CARD_HEADING}\n\n**Not scanned**: exported with `--no-scan`; no scanner read this data.\n"
    statuses = [finding.status for _, finding in result.findings()]
    lines = [
        CARD_HEADING,
        "",
        f"Before publishing, the captures and traces of every run were scanned with "
        f"**{result.options.scanner} {result.scanner_version}** (policy: {result.options.describe()}).",
        "",
        f"- findings: {', '.join(f'{statuses.count(status)} {status}' for status in STATUSES)}",
        f"- decision: {result.decision}",
    ]
    if result.redaction is not None:
        lines.append(
            "- every finding was replaced with `[REDACTED:<detector>:<sha8>]` in this dataset, and a re-scan "
            "of the published files found nothing"
        )
    return "\n".join(lines) + "\n"
