"""kingfisher (`kingfisher scan … -f jsonl`, PyPI `kingfisher-bin`): command line, version, parser.

Exit codes: 0 = clean, 200 = findings, 205 = validated findings, anything else = failed scan.
The final `{"audit": …}` line is the proof the scan ran; every input must report as scanned, and
its per-input `bytes_scanned` is what the gate checks against each file's size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.scan.findings import Finding, SecretBook, Status, make_finding
from exporter.scan.scanners.output import failure_excerpt, version_from
from exporter.scan.types import ParsedScan, ScanFailed

EXIT_CLEAN = 0
EXIT_FOUND = 200
EXIT_FOUND_VALIDATED = 205

# Validation outcomes of kingfisher 2.x. An inactive credential is still reported (pattern-only);
# "assumed"/"locally_derived" and any outcome we do not know are neither proven live nor dead.
_STATUS_BY_OUTCOME: dict[str, Status] = {
    "verified_active": "verified",
    "verified_inactive": "unverified",
    "not_attempted": "unverified",
}


class KingfisherScanner:
    name = "kingfisher"
    # A dependency of agentcap (PyPI kingfisher-bin): missing only from a broken install.
    install_hint = (
        "pip install kingfisher-bin (agentcap installs it; reinstall agentcap), or brew install kingfisher"
    )
    files_per_process = 500  # it reports bytes per input; the batch only bounds the command line

    def command(self, binary: str, paths: Sequence[Path], *, verify: bool) -> list[str]:
        argv = [binary, "scan", *map(str, paths), "--format", "jsonl", "--no-update-check", "--quiet"]
        # --no-dedup: identical files in two runs must both be reported, or one run looks clean.
        # --max-file-size 0 / --no-limits: by default it skips files over 256 MB and says "succeeded".
        # --no-extract-archives: a file is read as the bytes we publish (an archive then reads as 0
        #   bytes, and the gate refuses it by name), SQLite included.
        # --no-ignore: the recorded agent writes what is scanned; a `kingfisher:ignore` comment it
        #   plants next to a secret must not hide it.
        argv += ["--no-dedup", "--max-file-size", "0", "--no-limits", "--no-extract-archives", "--no-ignore"]
        if not verify:
            argv.append("--no-validate")
        return argv

    def check_version(self, version_output: str) -> str:
        return version_from(version_output, self.name)

    def parse(self, *, stdout: str, stderr: str, returncode: int, paths: Sequence[Path] = ()) -> ParsedScan:
        if returncode not in (EXIT_CLEAN, EXIT_FOUND, EXIT_FOUND_VALIDATED):
            raise ScanFailed(
                f"kingfisher failed (exit code {returncode}): {failure_excerpt(stderr or stdout)}"
            )
        book = SecretBook()
        findings: list[Finding] = []
        audit: dict[str, Any] | None = None
        for line_number, line in enumerate(stdout.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise ScanFailed(
                    f"kingfisher printed a line that is not JSON (stdout line {line_number})"
                ) from None
            if isinstance(entry, dict) and isinstance(entry.get("audit"), dict):
                audit = entry["audit"]
            elif isinstance(entry, dict) and "finding" in entry and "rule" in entry:
                findings.append(_finding(line_number, entry, book))
            else:
                raise ScanFailed(
                    f"kingfisher printed JSON that is neither a finding nor the audit (line {line_number})"
                )
        bytes_read = _audited_bytes(audit)
        if (returncode != EXIT_CLEAN) != bool(findings):
            raise ScanFailed(
                f"kingfisher exit code {returncode} contradicts the {len(findings)} findings it printed; "
                "not trusting the scan"
            )
        return ParsedScan(findings=findings, bytes_read=bytes_read, secrets=book)


def _audited_bytes(audit: dict[str, Any] | None) -> dict[str, int]:
    """Bytes read per input, from the audit line (each input path is one `repository` there)."""
    if audit is None:
        raise ScanFailed("kingfisher ended without its audit summary, so the scan did not complete")
    summary = audit.get("summary") or {}
    unfinished = sum(
        int(summary.get(key) or 0) for key in ("scan_failed", "scan_partial", "pending", "fetch_failed")
    )
    if unfinished or not summary.get("scan_succeeded"):
        raise ScanFailed(
            f"kingfisher did not scan every input completely (audit summary: {json.dumps(summary)})"
        )
    return {
        str(repo.get("repository")): int((repo.get("stats") or {}).get("bytes_scanned") or 0)
        for repo in audit.get("repositories") or []
        if isinstance(repo, dict)
    }


def _finding(line_number: int, entry: dict[str, Any], book: SecretBook) -> Finding:
    rule, finding = entry.get("rule") or {}, entry.get("finding") or {}
    secret = finding.get("snippet")
    if not finding.get("path") or not isinstance(secret, str) or not secret:
        raise ScanFailed(f"kingfisher finding on stdout line {line_number} has no path or no matched text")
    outcome = str((finding.get("validation") or {}).get("outcome") or "")
    return make_finding(
        book,
        scanner="kingfisher",
        detector=str(rule.get("id") or rule.get("name") or "unknown-rule"),
        file=str(finding["path"]),
        line=finding.get("line"),
        status=_STATUS_BY_OUTCOME.get(outcome, "unknown"),
        secret=secret,
    )


SCANNER = KingfisherScanner()
