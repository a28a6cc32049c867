"""The scan's types, for every scanner and every caller: options, targets, results, the adapter protocol.

Policy (`ScanOptions`): a verified hit blocks; pattern-only hits (unverified, unknown) are listed.
`--block-on any` makes every hit block. Without verification nothing can ever be "verified", so
`--no-verify` blocks on any hit unless `--block-on verified` is given explicitly. Exact values
(`exporter.scan.known`) always block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from exporter.core.errors import UserError
from exporter.scan.decoded import LineMap
from exporter.scan.findings import Finding, SecretBook
from exporter.scan.known import KnownValues, known_values

DEFAULT_SCANNER = "kingfisher"
"""The scanner the gate runs unless told otherwise: a dependency of agentcap, so always installed."""

# Bumped whenever the decoded views change what the scanner reads: older cached results are stale.
VIEWS_VERSION = "1"
SCAN_TIMEOUT_S = 3600


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
    """What a scanner module supplies: its command line, its version rule and its output parser."""

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


BlockOn = Literal["verified", "any"]


@dataclass(frozen=True)
class ScanOptions:
    scanner: str = DEFAULT_SCANNER
    verify: bool = True
    block_on: BlockOn | None = None  # None: "verified" when verifying, else "any"
    rescan: bool = False
    known: KnownValues = field(default_factory=KnownValues)  # exact values that must never be published

    @classmethod
    def from_flags(
        cls, *, scanner: str, block_on: str | None, no_verify: bool, rescan: bool, values_file: Path | None
    ) -> ScanOptions:
        """From the shared scanner flags (`exporter.cli_base.scanner_options`)."""
        policy: BlockOn | None = (
            "any" if block_on == "any" else "verified" if block_on == "verified" else None
        )
        known = known_values(values_file=values_file)
        return cls(scanner=scanner, verify=not no_verify, block_on=policy, rescan=rescan, known=known)

    @property
    def policy(self) -> BlockOn:
        return self.block_on or ("verified" if self.verify else "any")

    def blocks(self, finding: Finding) -> bool:
        return self.policy == "any" or finding.status == "verified"

    def describe(self) -> str:
        blocking = "every hit blocks" if self.policy == "any" else "verified hits block, others are listed"
        verification = "candidates verified with their issuers" if self.verify else "offline, no verification"
        return f"{blocking}; {verification}"

    def cache_options(self) -> tuple[tuple[str, str], ...]:
        # Only what changes the findings; the policy is applied afterwards.
        return (
            ("verify", str(self.verify).lower()),
            ("decoded-views", VIEWS_VERSION),
            ("known-values", self.known.digest),
        )


@dataclass(frozen=True)
class RedactionSummary:
    """What `--redact` replaced in the staged copies, after a re-scan of them came back clean."""

    secrets: int
    files_changed: tuple[str, ...]  # "<bundle>/<path>"
    rescan_scanner: str

    def describe(self) -> str:
        return (
            f"redacted {self.secrets} secret(s) in {len(self.files_changed)} published file(s); "
            f"a re-scan of the output with {self.rescan_scanner} found nothing"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"secrets": self.secrets, "files_changed": list(self.files_changed), "rescan": "clean"}


@dataclass(frozen=True)
class ScanInputs:
    """`files` go to the scanner; `content_sha256` covers every one of them (path, size, content)."""

    root: Path
    files: tuple[Path, ...]
    bytes: int
    content_sha256: str


@dataclass
class RunScan:
    run_id: str
    inputs: ScanInputs
    findings: list[Finding]
    cached: bool


@dataclass
class ScanResult:
    options: ScanOptions
    scanner_version: str
    runs: list[RunScan]
    secrets: SecretBook = field(default_factory=SecretBook, repr=False)
    redaction: RedactionSummary | None = None

    def findings(self) -> list[tuple[str, Finding]]:
        return [(run.run_id, finding) for run in self.runs for finding in run.findings]

    def blocking(self) -> list[tuple[str, Finding]]:
        if self.redaction is not None:
            return []  # every finding was replaced in the published copies and a re-scan came back clean
        return [(run_id, finding) for run_id, finding in self.findings() if self.options.blocks(finding)]

    @property
    def decision(self) -> str:
        if self.redaction is not None:
            return "redacted"
        if self.blocking():
            return "blocked"
        return "passed with findings" if self.findings() else "clean"
