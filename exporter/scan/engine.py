"""The scan engine: the one place a scanner process is started, and scanning runs with the cache.

Everything here fails closed: a missing binary, a crash, a timeout, output we cannot read, or a
file the scanner did not read to its last byte (a size limit, a time limit, an archive it would
unpack) raises `ScanFailed` naming the file; nothing turns into "0 findings".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from exporter.scan.cache import CacheKey, load_cached, store_cached
from exporter.scan.findings import STATUSES, Finding, SecretBook
from exporter.scan.inputs import scan_inputs, scan_targets
from exporter.scan.known import KnownValues, find_known
from exporter.scan.scanners import get_scanner, scanner_names
from exporter.scan.scanners.output import last_line
from exporter.scan.types import (
    SCAN_TIMEOUT_S,
    ParsedScan,
    RunScan,
    ScanFailed,
    ScanInputs,
    ScannerAdapter,
    ScanOptions,
    ScanResult,
    ScanTarget,
)
from exporter.shared.runs import RunDir, local_copies

VERSION_TIMEOUT_S = 60


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
    return scanner.parse(
        stdout=completed.stdout, stderr=completed.stderr, returncode=completed.returncode, paths=paths
    )


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


def scan_runs(
    runs: Sequence[RunDir],
    options: ScanOptions,
    *,
    workdir: Path,
    need_secrets: bool = False,
    known: Mapping[str, RunScan] | None = None,
) -> ScanResult:
    """Scan each run's published plain text, reusing cached results where content and settings match.

    The decoded views are written under `workdir` (private: they hold what the runs hold).
    `known` holds results the export's per-run tasks already got (by run id): used as they are.
    `need_secrets` (for --redact) rescans runs whose cached or known result has findings: those
    hold hashes, and redaction needs the secrets themselves, which only a live scan hands over.
    Runs under a URL are scanned in a local copy of what is published (`shared.runs.local_copies`).
    """
    ready = ready_scanner(options.scanner)
    results: dict[int, RunScan] = {}
    for position, run in enumerate(runs):
        prior = (known or {}).get(run.run_id)
        if prior is not None and not (need_secrets and prior.findings):
            results[position] = prior
    rest = [position for position in range(len(runs)) if position not in results]
    with local_copies([runs[position] for position in rest]) as local:
        scanned, secrets = _scan_local(local, options, ready, workdir=workdir, need_secrets=need_secrets)
    results.update(zip(rest, scanned, strict=True))
    ordered = [results[position] for position in range(len(runs))]
    return ScanResult(options=options, scanner_version=ready.version, runs=ordered, secrets=secrets)


def _scan_local(
    runs: Sequence[RunDir], options: ScanOptions, ready: ReadyScanner, *, workdir: Path, need_secrets: bool
) -> tuple[list[RunScan], SecretBook]:
    scanner, binary, version = ready.adapter, ready.binary, ready.version
    keys: dict[Path, CacheKey] = {}
    results: dict[Path, RunScan] = {}
    pending: list[tuple[RunDir, ScanInputs]] = []
    for run in runs:
        inputs = scan_inputs(run)
        key = CacheKey(inputs.content_sha256, scanner.name, version, options.cache_options())
        keys[inputs.root] = key
        cached = None if options.rescan else load_cached(inputs.root, key)
        if cached is not None and not (need_secrets and cached):
            results[inputs.root] = RunScan(run.run_id, inputs, cached, cached=True)
        else:
            pending.append((run, inputs))
    targets: list[ScanTarget] = []
    for number, (run, inputs) in enumerate(pending):
        files = [(file, file.relative_to(inputs.root).as_posix()) for file in inputs.files]
        targets += scan_targets(
            files, root=inputs.root, owner=run.run_id, views=workdir / "views" / str(number)
        )
    per_root, secrets = scan_files(scanner, binary, targets, verify=options.verify, known=options.known)
    for run, inputs in pending:
        findings = per_root.get(inputs.root, [])
        store_cached(inputs.root, keys[inputs.root], findings)
        results[inputs.root] = RunScan(run.run_id, inputs, findings, cached=False)
    return [results[run.local.resolve()] for run in runs], secrets
