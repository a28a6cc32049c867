"""The report is a file people share, so it passes the same secret scan as a published dataset.

The rendered HTML itself is scanned (whatever the source: a run, a parquet file, a Hub dataset), each
secret found is replaced by `[REDACTED:<detector>:<sha8>]` in every form it can take in the page
(as scanned, JSON-escaped, HTML-escaped), and a second scan must come back clean. Fails closed: a
missing scanner, a crash or a secret that survives masking stops the command; nothing is written.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter.scan.findings import Finding
from exporter.scan.redact import Replacements, redaction_token, replace_text, written_forms
from exporter.scan.registry import ReadyScanner, ScanFailed, scan_groups

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


def mask_secrets(page: str, scanner: ReadyScanner) -> tuple[str, Masking]:
    """`page` with every secret the scanner finds masked, and what was found (hashes and previews)."""
    findings, replacements = _scan(page, scanner)
    if findings:
        page = replace_text(page, replacements)
        left, _ = _scan(page, scanner)
        if left:
            raise ScanFailed(
                f"{len(left)} secret(s) still found in the report after masking "
                f"({', '.join(sorted({finding.detector for finding in left}))}); nothing was written"
            )
    return page, Masking(f"{scanner.adapter.name} {scanner.version}", findings)


def _scan(page: str, scanner: ReadyScanner) -> tuple[list[Finding], Replacements]:
    with tempfile.TemporaryDirectory(prefix="agentcap-report-") as folder:
        root = Path(folder).resolve()
        path = root / PAGE
        path.write_text(page, encoding="utf-8")
        per_root, secrets = scan_groups(
            scanner.adapter, scanner.binary, {root: (path,)}, verify=False, expected_bytes=path.stat().st_size
        )
    findings = per_root[root]
    pairs: dict[str, str] = {}
    for finding in findings:
        secret = secrets.secret(finding.sha256)
        if secret is None:
            raise ScanFailed(
                f"cannot mask {finding.detector}: the scanner did not hand over the matched text"
            )
        for form in written_forms(secret) | {html.unescape(secret)}:
            pairs.setdefault(form, redaction_token(finding))
            pairs.setdefault(html.escape(form), redaction_token(finding))
    return findings, sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)
