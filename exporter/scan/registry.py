"""The scanner registry and the one place a scanner process is started.

Each scanner module supplies a `ScannerAdapter`: its command line, how to read its version,
and a parser that applies its exit-code rules and says how many bytes of each input it read.
Everything here fails closed: a missing binary, a crash, a timeout, output we cannot read, or a
file the scanner did not read to its last byte (a size limit, a time limit, an archive it would
unpack) raises `ScanFailed` naming the file; nothing turns into "0 findings".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Protocol

from exporter.errors import UserError
from exporter.scan.decoded import LineMap
from exporter.scan.findings import STATUSES, Finding, SecretBook, masked_preview
from exporter.scan.known import KnownValues, find_known

SCAN_TIMEOUT_S = 3600
VERSION_TIMEOUT_S = 60
_VERSION_PATTERN = re.compile(r"\b(\d+\.\d+\.\d+)\b")


class ScanFailed(UserError):
    """The scan could not run or its output cannot be trusted (exit 2); the export stops."""


@dataclass
class ParsedScan:
    """A scanner's findings (file = path as reported) and its proof that it really ran.

    `bytes_read` maps each input path (as given) to the bytes the scanner says it read of it.
    """

    findings: list[Finding]
    bytes_read: dict[str, int]
    secrets: SecretBook = field(default_factory=SecretBook, repr=False)


class ScannerAdapter(Protocol):
    name: str
    install_hint: str
    # How many files one process may get: 1 when the scanner only reports a total for its inputs.
    files_per_process: int

    def command(self, binary: str, paths: Sequence[Path], *, verify: bool) -> list[str]: ...

    def check_version(self, version_output: str) -> str:
        """The version from `<binary> --version` output; raise ScanFailed for an unusable one."""
        ...

    def parse(self, *, stdout: str, stderr: str, returncode: int, paths: Sequence[Path]) -> ParsedScan: ...


@dataclass(frozen=True)
class ScanTarget:
    """One file for the scanner, and where its findings are filed.

    `path` is what the scanner reads: a published file, or the decoded view of one (`lines` then
    maps the view's lines back to the published file's). Findings are filed under `root` (a run
    or a bundle folder) as `label`, the published file relative to it; `owner` names the root.
    """

    path: Path
    root: Path
    owner: str
    label: str
    lines: LineMap | None = None

    @property
    def name(self) -> str:
        return f"{self.owner}/{self.label}" + (" (decoded view)" if self.lines is not None else "")


def scanner_names() -> list[str]:
    return sorted(_scanners())


def get_scanner(name: str) -> ScannerAdapter:
    scanners = _scanners()
    if name not in scanners:
        raise UserError(f"unknown scanner {name!r}; choose one of: {', '.join(sorted(scanners))}")
    return scanners[name]


def _scanners() -> dict[str, ScannerAdapter]:
    from exporter.scan import kingfisher, trufflehog

    return {trufflehog.SCANNER.name: trufflehog.SCANNER, kingfisher.SCANNER.name: kingfisher.SCANNER}


def locate_binary(scanner: ScannerAdapter) -> str:
    """PATH first, then the bin directory of this Python (where pip puts kingfisher, a dependency)."""
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
    return scanner.parse(
        stdout=completed.stdout, stderr=completed.stderr, returncode=completed.returncode, paths=paths
    )


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


_live: set[subprocess.Popen[str]] = set()
_live_lock = threading.Lock()


def _run(scanner: ScannerAdapter, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as error:
        raise ScanFailed(f"cannot start {scanner.name} ({argv[0]}): {error.strerror or error}") from error
    with _live_lock:
        _live.add(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise ScanFailed(
            f"{scanner.name} did not finish within {timeout:.0f} s; the scan result is unknown"
        ) from error
    finally:
        with _live_lock:
            _live.discard(process)
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _stop_live_scans() -> None:
    """Kill every scanner still running (the export is being stopped: its threads cannot be)."""
    with _live_lock:
        for process in _live:
            process.kill()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _clip(lines[-1]) if lines else "(no output)"


def _clip(line: str, limit: int = 200) -> str:
    # A scanner's own words can quote what it found (trufflehog's stdout is findings with `Raw`):
    # every long token-like run is masked before it is shown.
    line = _TOKEN_LIKE.sub(lambda match: masked_preview(match.group()), line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def scan_files(
    scanner: ScannerAdapter, binary: str, targets: Sequence[ScanTarget], *, verify: bool, known: KnownValues
) -> tuple[dict[Path, list[Finding]], SecretBook]:
    """Scan every target; findings come back per root, filed under the published file and its line.

    Processes run side by side (one file each for a scanner that only reports totals). Every file
    must be read to its last byte, and every finding must point at a file we gave: anything else
    fails the scan. The built-in exact-value detector (`known`) reads the same files.
    """
    per_root: dict[Path, list[Finding]] = {target.root: [] for target in targets}
    book = SecretBook()
    size = max(1, scanner.files_per_process)
    batches = [list(targets[start : start + size]) for start in range(0, len(targets), size)]
    if batches:
        with ThreadPoolExecutor(max_workers=min(len(batches), os.cpu_count() or 2)) as pool:
            try:
                results = list(
                    pool.map(
                        lambda batch: run_scan(scanner, binary, [t.path for t in batch], verify=verify),
                        batches,
                    )
                )
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                _stop_live_scans()
                raise
        for batch, parsed in zip(batches, results, strict=True):
            _check_read_whole(scanner, batch, parsed)
            for finding in parsed.findings:
                target = _target_of(finding.file, batch)
                if target is None:
                    raise ScanFailed(
                        f"{scanner.name} reported a finding outside the scanned paths; not trusting the scan"
                    )
                per_root[target.root].append(_filed(finding, target))
            book.merge(parsed.secrets)
    for target in targets:
        line_of = target.lines.source_line if target.lines is not None else None
        found, secrets = find_known(known, target.path, file=target.label, line_of=line_of)
        per_root[target.root] += found
        book.merge(secrets)
    return {root: _unique(findings) for root, findings in per_root.items()}, book


def _unique(findings: list[Finding]) -> list[Finding]:
    """One finding per secret and place: a file and its decoded view report the same ones.

    Of two reports, the stronger status is kept (the view is never verified more than the file).
    """
    kept: dict[tuple[str, str, str, int | None, str], Finding] = {}
    for finding in findings:
        key = (finding.scanner, finding.detector, finding.file, finding.line, finding.sha256)
        earlier = kept.get(key)
        if earlier is None or STATUSES.index(finding.status) < STATUSES.index(earlier.status):
            kept[key] = finding
    return list(kept.values())


def _check_read_whole(scanner: ScannerAdapter, batch: Sequence[ScanTarget], parsed: ParsedScan) -> None:
    for target in batch:
        size = target.path.stat().st_size
        read = parsed.bytes_read.get(str(target.path), 0)
        if read < size:
            raise ScanFailed(
                f"{scanner.name} read {read} of {size} bytes of {target.name}, so the scan proves nothing and "
                "nothing is published; a scanner unpacks some files instead of reading them (archives, "
                "compressed files; databases, for trufflehog): unpack or remove it, or use the other --scanner"
            )


def _target_of(reported: str, batch: Sequence[ScanTarget]) -> ScanTarget | None:
    by_path = {str(target.path): target for target in batch}
    if reported in by_path:
        return by_path[reported]
    # A scanner that looks inside a file reports `<file>/<part>`: the longest file it lies in.
    inside = [target for target in batch if Path(reported).is_relative_to(target.path)]
    return max(inside, key=lambda target: len(target.path.parts), default=None)


def _filed(finding: Finding, target: ScanTarget) -> Finding:
    line = target.lines.source_line(finding.line) if target.lines is not None else finding.line
    return replace(finding, file=target.label, line=line if line else None)
