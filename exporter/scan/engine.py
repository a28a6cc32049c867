"""The scanner registry and the one place a scanner process is started.

Each scanner module supplies a `ScannerAdapter`: its command line, how to read its version,
and a parser that applies its exit-code rules. Everything here fails closed: a missing binary,
a crash, a timeout or output we cannot read raises `ScanFailed`; nothing turns into "0 findings".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Protocol

from exporter.core.errors import UserError
from exporter.scan.types import Finding, SecretBook, masked_preview

SCAN_TIMEOUT_S = 3600
VERSION_TIMEOUT_S = 60
_VERSION_PATTERN = re.compile(r"\b(\d+\.\d+\.\d+)\b")


class ScanFailed(UserError):
    """The scan could not run or its output cannot be trusted (exit 2); the export stops."""


@dataclass
class ParsedScan:
    """A scanner's findings (file = absolute path as reported) and its proof that it really ran."""

    findings: list[Finding]
    bytes_scanned: int
    secrets: SecretBook = field(default_factory=SecretBook, repr=False)


class ScannerAdapter(Protocol):
    name: str
    install_hint: str

    def command(self, binary: str, paths: Sequence[Path], *, verify: bool) -> list[str]: ...

    def check_version(self, version_output: str) -> str:
        """The version from `<binary> --version` output; raise ScanFailed for an unusable one."""
        ...

    def parse(self, *, stdout: str, stderr: str, returncode: int) -> ParsedScan: ...


def scanner_names() -> list[str]:
    return sorted(_scanners())


def get_scanner(name: str) -> ScannerAdapter:
    scanners = _scanners()
    if name not in scanners:
        raise UserError(f"unknown scanner {name!r}; choose one of: {', '.join(sorted(scanners))}")
    return scanners[name]


def _scanners() -> dict[str, ScannerAdapter]:
    from exporter.scan.scanners import kingfisher, trufflehog

    return {trufflehog.SCANNER.name: trufflehog.SCANNER, kingfisher.SCANNER.name: kingfisher.SCANNER}


def locate_binary(scanner: ScannerAdapter) -> str:
    """PATH first, then the bin directory of this Python (where `agentcap[kingfisher]` puts it)."""
    found = shutil.which(scanner.name)
    if found is None:
        beside_python = Path(sys.executable).parent / scanner.name
        if beside_python.is_file() and os.access(beside_python, os.X_OK):
            found = str(beside_python)
    if found is None:
        others = [name for name in scanner_names() if name != scanner.name]
        alternatives = " or ".join(
            [f"--scanner {name}" for name in others] + ["(export only) --no-scan to publish unscanned"]
        )
        raise ScanFailed(
            f"{scanner.name} is not installed, so nothing can be scanned; "
            f"install it ({scanner.install_hint}) or use {alternatives}"
        )
    return found


DEFAULT_SCANNER = "kingfisher"
"""The scanner the gate runs unless told otherwise: a dependency of agentcap, so always installed."""


@dataclass(frozen=True)
class ReadyScanner:
    """A scanner that was found and answered `--version` with a version we accept."""

    adapter: ScannerAdapter
    binary: str
    version: str


def ready_scanner(name: str) -> ReadyScanner:
    """Locate and version-check a scanner: done before any run is read, so a missing one is the first line.

    The version answer is remembered per binary file (path, size, mtime), so the gate's later call
    does not start the scanner again, while a replaced or different binary is asked afresh.
    """
    adapter = get_scanner(name)
    binary = locate_binary(adapter)
    stat = os.stat(binary)
    return ReadyScanner(adapter, binary, _checked_version(adapter, binary, stat.st_size, stat.st_mtime_ns))


@cache
def _checked_version(adapter: ScannerAdapter, binary: str, size: int, mtime_ns: int) -> str:
    return scanner_version(adapter, binary)


def scanner_version(scanner: ScannerAdapter, binary: str) -> str:
    completed = _run(scanner, [binary, "--version"], timeout=VERSION_TIMEOUT_S)
    if completed.returncode != 0:
        raise ScanFailed(
            f"`{scanner.name} --version` failed with exit code {completed.returncode}: "
            f"{_last_line(completed.stderr or completed.stdout)}"
        )
    return scanner.check_version(completed.stdout + "\n" + completed.stderr)


def run_scan(scanner: ScannerAdapter, binary: str, paths: Sequence[Path], *, verify: bool) -> ParsedScan:
    completed = _run(scanner, scanner.command(binary, paths, verify=verify), timeout=SCAN_TIMEOUT_S)
    return scanner.parse(stdout=completed.stdout, stderr=completed.stderr, returncode=completed.returncode)


def version_from(output: str, scanner_name: str) -> str:
    match = _VERSION_PATTERN.search(output)
    if match is None:
        raise ScanFailed(
            f"cannot read the {scanner_name} version from `{scanner_name} --version`: {_last_line(output)}"
        )
    return match.group(1)


_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_+=-]{20,}")


def failure_excerpt(text: str) -> str:
    """The scanner's own explanation, short: its first error line, else its last line."""
    for line in text.splitlines():
        if "error" in line.lower():
            return _clip(line.strip())
    return _last_line(text)


def _run(scanner: ScannerAdapter, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise ScanFailed(
            f"{scanner.name} did not finish within {timeout:.0f} s; the scan result is unknown"
        ) from error
    except OSError as error:
        raise ScanFailed(f"cannot start {scanner.name} ({argv[0]}): {error.strerror or error}") from error


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _clip(lines[-1]) if lines else "(no output)"


def _clip(line: str, limit: int = 200) -> str:
    # A scanner's own words can quote what it found (trufflehog's stdout is findings with `Raw`):
    # every long token-like run is masked before it is shown.
    line = _TOKEN_LIKE.sub(lambda match: masked_preview(match.group()), line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def scan_groups(
    scanner: ScannerAdapter,
    binary: str,
    groups: Mapping[Path, Sequence[Path]],
    *,
    verify: bool,
    expected_bytes: int,
) -> tuple[dict[Path, list[Finding]], SecretBook]:
    """One scanner process over several roots (runs, bundles); findings come back per root, files relative.

    A finding outside every root, or a scanner that read nothing of a non-empty input, fails the scan.
    """
    paths = [path for group in groups.values() for path in group]
    per_root: dict[Path, list[Finding]] = {root: [] for root in groups}
    if not paths:
        return per_root, SecretBook()
    parsed = run_scan(scanner, binary, paths, verify=verify)
    if expected_bytes and not parsed.bytes_scanned:
        raise ScanFailed(f"{scanner.name} read 0 of {expected_bytes} bytes; the scan did not really run")
    roots = sorted(groups, key=lambda root: len(root.parts), reverse=True)
    for finding in parsed.findings:
        reported = Path(finding.file)
        root = next((root for root in roots if reported.is_relative_to(root)), None)
        if root is None:
            raise ScanFailed(
                f"{scanner.name} reported a finding outside the scanned paths; not trusting the scan"
            )
        per_root[root].append(replace(finding, file=reported.relative_to(root).as_posix()))
    return per_root, parsed.secrets
