"""The report is a file people share, so it passes the same secret scan as a published dataset.

The rendered HTML itself is scanned (whatever the source: a run, a parquet file, a Hub dataset), each
secret found is replaced by `[REDACTED:<detector>:<sha8>]` in every form it can take in the page
(as scanned, JSON-escaped, HTML-escaped), and a second scan must come back clean. Like the export
gate, the exact values of this machine's credentials (from its environment) count as found. Fails
closed: a
missing scanner, a crash or a secret that survives masking stops the command; nothing is written.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter.export.gate.redact import redaction_token
from exporter.scan.decoded import Replacer
from exporter.scan.engine import ReadyScanner, scan_files
from exporter.scan.findings import Finding
from exporter.scan.known import KnownValues, known_values, written_forms
from exporter.scan.types import ScanFailed, ScanTarget

PAGE = "report.html"


@dataclass(frozen=True)
class Masking:
    scanner: str  # name and version
    findings: list[Finding]

    def describe(self) -> str:
        if not self.findings:
            return f"secret scan ({self.scanner}): nothing found"
        secrets = len({finding.sha256 for finding in self.findings})
        return f"secret scan ({self.scanner}): {secrets} secret(s) masked"


def mask_secrets(page: str, scanner: ReadyScanner, known: KnownValues | None = None) -> tuple[str, Masking]:
    """`page` with every secret the scanner finds masked, and what was found (hashes and previews)."""
    known = known_values() if known is None else known
    findings, replacer = _scan(page, scanner, known)
    if findings:
        page = replacer.text(page)
        left, _ = _scan(page, scanner, known)
        if left:
            raise ScanFailed(
                f"{len(left)} secret(s) still found in the report after masking "
                f"({', '.join(sorted({finding.detector for finding in left}))}); nothing was written"
            )
    return page, Masking(f"{scanner.adapter.name} {scanner.version}", findings)


def _scan(page: str, scanner: ReadyScanner, known: KnownValues) -> tuple[list[Finding], Replacer]:
    with tempfile.TemporaryDirectory(prefix="agentcap-report-") as folder:
        root = Path(folder).resolve()
        path = root / PAGE
        path.write_text(page, encoding="utf-8")
        target = ScanTarget(path=path, root=root, owner="report", label=PAGE)
        per_root, secrets = scan_files(scanner.adapter, scanner.binary, [target], verify=False, known=known)
    findings = per_root[root]
    pairs: dict[str, str] = {}
    for finding in findings:
        secret = secrets.secret(finding.sha256)
        if secret is None:
            raise ScanFailed(
                f"cannot mask {finding.detector}: the scanner did not hand over the matched text"
            )
        token = redaction_token(finding.detector, finding.sha256)
        for form in written_forms(secret) | {html.unescape(secret)}:
            pairs.setdefault(form, token)
            pairs.setdefault(html.escape(form), token)
    return findings, Replacer(pairs)
