"""trufflehog v3 (`trufflehog filesystem … --json`): command line, version rule, output parser.

Exit codes with `--fail`: 0 = clean, 183 = results found, anything else = failed scan. The
stderr `finished scanning` summary is the proof the scan ran; without it nothing is trusted.
Its byte count is a total over the inputs, so each process gets one file: the count then says
how much of that file was read (chunks overlap, so a whole file counts at least its size).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.scan.findings import Finding, SecretBook, Status, make_finding
from exporter.scan.scanners.output import failure_excerpt, version_from
from exporter.scan.types import SCAN_TIMEOUT_S, ParsedScan, ScanFailed

EXIT_CLEAN = 0
EXIT_FOUND = 183


class TrufflehogScanner:
    name = "trufflehog"
    install_hint = (
        "brew install trufflehog; on Debian/Ubuntu (no apt package) use the release installer: "
        "curl -sSfL https://raw.githubusercontent.com/trufflesecurity/trufflehog/main/scripts/install.sh "
        "| sh -s -- -b ~/.local/bin; not `pip install trufflehog`, an unrelated old tool"
    )

    files_per_process = 1  # its summary counts bytes for all inputs together

    def command(self, binary: str, paths: Sequence[Path], *, verify: bool) -> list[str]:
        argv = [binary, "filesystem", *map(str, paths), "--json", "--no-color", "--no-update"]
        argv += ["--results=verified,unknown,unverified", "--fail", "--fail-on-scan-errors"]
        # Each file is handled under a time limit (60 s by default) that cuts a big file short and
        # still reports success: give it the whole scan's time. Archives are skipped, not unpacked:
        # the gate then refuses them by name (their bytes are what is published, unscanned).
        argv += [f"--archive-timeout={SCAN_TIMEOUT_S}s", "--force-skip-archives"]
        if not verify:
            argv.append("--no-verification")
        return argv

    def check_version(self, version_output: str) -> str:
        version = version_from(version_output, self.name)
        if not version.startswith("3."):
            raise ScanFailed(
                f"found trufflehog {version}, but agentcap needs trufflehog v3 (the pip package `trufflehog` "
                f"is an unrelated old tool); install v3: {self.install_hint}"
            )
        return version

    def parse(self, *, stdout: str, stderr: str, returncode: int, paths: Sequence[Path] = ()) -> ParsedScan:
        if returncode not in (EXIT_CLEAN, EXIT_FOUND):
            raise ScanFailed(
                f"trufflehog failed (exit code {returncode}): {failure_excerpt(stderr or stdout)}"
            )
        stats = _finished_scanning_stats(stderr)
        book = SecretBook()
        findings = [
            _finding(line_number, line, book)
            for line_number, line in enumerate(stdout.splitlines(), start=1)
            if line.strip()
        ]
        reported = int(stats.get("verified_secrets", 0)) + int(stats.get("unverified_secrets", 0))
        if reported and not findings:
            raise ScanFailed(
                f"trufflehog reported {reported} secrets but printed none of them; not trusting the scan"
            )
        if (returncode == EXIT_FOUND) != bool(findings):
            raise ScanFailed(
                f"trufflehog exit code {returncode} contradicts the {len(findings)} findings it printed; "
                "not trusting the scan"
            )
        total = int(stats.get("bytes", 0))
        # One input: the total is its own count. Several: no file's count is known, so none is trusted.
        bytes_read = {str(paths[0]): total} if len(paths) == 1 else {}
        return ParsedScan(findings=findings, bytes_read=bytes_read, secrets=book)


def _finished_scanning_stats(stderr: str) -> dict[str, Any]:
    # The last such line is the overall summary, whatever trufflehog logs before it.
    summary = next((line for line in reversed(stderr.splitlines()) if "finished scanning" in line), None)
    if summary is None or "{" not in summary:
        raise ScanFailed(
            "trufflehog ended without its `finished scanning` summary, so the scan did not complete; "
            f"its last words: {failure_excerpt(stderr)}"
        )
    try:
        stats = json.loads(summary[summary.index("{") :])
    except json.JSONDecodeError as error:
        raise ScanFailed(f"cannot read trufflehog's `finished scanning` summary: {error}") from error
    if not isinstance(stats, dict) or "bytes" not in stats:
        raise ScanFailed("trufflehog's `finished scanning` summary has no byte count; not trusting the scan")
    return stats


def _finding(line_number: int, line: str, book: SecretBook) -> Finding:
    try:
        result = json.loads(line)
    except json.JSONDecodeError:
        raise ScanFailed(f"trufflehog printed a line that is not JSON (stdout line {line_number})") from None
    if not isinstance(result, dict) or not result.get("DetectorName"):
        raise ScanFailed(f"trufflehog printed JSON that is not a finding (stdout line {line_number})")
    location = ((result.get("SourceMetadata") or {}).get("Data") or {}).get("Filesystem") or {}
    secret = result.get("Raw") or result.get("RawV2")
    if not location.get("file") or not isinstance(secret, str):
        raise ScanFailed(f"trufflehog finding on stdout line {line_number} has no file or no matched text")
    return make_finding(
        book,
        scanner="trufflehog",
        detector=str(result["DetectorName"]),
        file=str(location["file"]),
        line=location.get("line"),
        status=_status(result),
        secret=secret,
    )


def _status(result: dict[str, Any]) -> Status:
    if result.get("Verified") is True:
        return "verified"
    if result.get("VerificationError"):
        return "unknown"
    return "unverified"


SCANNER = TrufflehogScanner()
