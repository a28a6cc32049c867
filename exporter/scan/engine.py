"""The scan engine: the one place a scanner process is started, and scanning runs with the cache.

Everything here fails closed: a missing binary, a crash, a timeout or output we cannot read raises
`ScanFailed`; nothing turns into "0 findings".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from exporter.scan.cache import CacheKey, load_cached, store_cached
from exporter.scan.inputs import ScanInputs, scan_inputs
from exporter.scan.scanners import get_scanner, scanner_names
from exporter.scan.scanners.output import last_line
from exporter.scan.types import (
    Finding,
    ParsedScan,
    RunScan,
    ScanFailed,
    ScannerAdapter,
    ScanOptions,
    ScanResult,
    SecretBook,
)
from exporter.shared.runs import RunDir

SCAN_TIMEOUT_S = 3600
VERSION_TIMEOUT_S = 60


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
    return ReadyScanner(adapter, binary, _checked_version(name, binary, stat.st_size, stat.st_mtime_ns))


@cache
def _checked_version(name: str, binary: str, size: int, mtime_ns: int) -> str:
    return scanner_version(get_scanner(name), binary)


def scanner_version(scanner: ScannerAdapter, binary: str) -> str:
    completed = _run(scanner, [binary, "--version"], timeout=VERSION_TIMEOUT_S)
    if completed.returncode != 0:
        raise ScanFailed(
            f"`{scanner.name} --version` failed with exit code {completed.returncode}: "
            f"{last_line(completed.stderr or completed.stdout)}"
        )
    return scanner.check_version(completed.stdout + "\n" + completed.stderr)


def run_scan(scanner: ScannerAdapter, binary: str, paths: Sequence[Path], *, verify: bool) -> ParsedScan:
    completed = _run(scanner, scanner.command(binary, paths, verify=verify), timeout=SCAN_TIMEOUT_S)
    return scanner.parse(stdout=completed.stdout, stderr=completed.stderr, returncode=completed.returncode)


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


def scan_runs(runs: Sequence[RunDir], options: ScanOptions, *, need_secrets: bool = False) -> ScanResult:
    """Scan each run's published plain text, reusing cached results where content and settings match.

    `need_secrets` (for --redact) rescans runs whose cached result has findings: the cache holds
    hashes, and redaction needs the secrets themselves, which only a live scan hands over.
    """
    ready = ready_scanner(options.scanner)
    scanner, binary, version = ready.adapter, ready.binary, ready.version
    keys: dict[Path, CacheKey] = {}
    results: dict[Path, RunScan] = {}
    pending: list[tuple[RunDir, ScanInputs]] = []
    for run in runs:
        inputs = scan_inputs(run.path)
        key = CacheKey(inputs.content_sha256, scanner.name, version, options.cache_options())
        keys[inputs.root] = key
        cached = None if options.rescan else load_cached(inputs.root, key)
        if cached is not None and not (need_secrets and cached):
            results[inputs.root] = RunScan(run.run_id, inputs, cached, cached=True)
        else:
            pending.append((run, inputs))
    per_root, secrets = scan_groups(
        scanner,
        binary,
        {inputs.root: inputs.paths for _, inputs in pending},
        verify=options.verify,
        expected_bytes=sum(inputs.bytes for _, inputs in pending),
    )
    for run, inputs in pending:
        findings = per_root[inputs.root]
        store_cached(inputs.root, keys[inputs.root], findings)
        results[inputs.root] = RunScan(run.run_id, inputs, findings, cached=False)
    ordered = [results[run.path.resolve()] for run in runs]
    return ScanResult(options=options, scanner_version=version, runs=ordered, secrets=secrets)
