"""The scan's types, for every scanner and every caller: findings, options, results, the adapter protocol.

A finding says where a secret is and how sure we are, never what it is. The raw secret exists
only between parsing a scanner's output and hashing it. Redaction needs it a little longer, so
the parsers also hand it to a `SecretBook`, which lives in memory only and refuses to be printed
or serialised.

Policy (`ScanOptions`): a verified hit blocks; pattern-only hits (unverified, unknown) are listed.
`--block-on any` makes every hit block. Without verification nothing can ever be "verified", so
`--no-verify` blocks on any hit unless `--block-on verified` is given explicitly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol

from exporter.core.errors import UserError
from exporter.scan.inputs import ScanInputs

DEFAULT_SCANNER = "kingfisher"
"""The scanner the gate runs unless told otherwise: a dependency of agentcap, so always installed."""

Status = Literal["verified", "unknown", "unverified"]
STATUSES: tuple[Status, ...] = ("verified", "unknown", "unverified")

# Below this length first4…last4 would reveal most of the secret, so it is fully masked.
_MIN_PREVIEW_LENGTH = 16


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def masked_preview(secret: str) -> str:
    if len(secret) < _MIN_PREVIEW_LENGTH:
        return "*" * 8
    return f"{secret[:4]}…{secret[-4:]}"


@dataclass(frozen=True)
class Finding:
    """A secret a scanner reported. `file` is POSIX and relative to the run (or bundle) directory."""

    scanner: str
    detector: str
    file: str
    line: int | None
    status: Status
    sha256: str
    preview: str

    @property
    def sha8(self) -> str:
        return self.sha256[:8]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        if data.get("status") not in STATUSES:
            raise ValueError(f"unknown finding status {data.get('status')!r}")
        return cls(
            scanner=str(data["scanner"]),
            detector=str(data["detector"]),
            file=str(data["file"]),
            line=None if data.get("line") is None else int(data["line"]),
            status=data["status"],
            sha256=str(data["sha256"]),
            preview=str(data["preview"]),
        )


class SecretBook:
    """Raw secrets seen by this process, by sha256, kept in memory for `--redact` only."""

    def __init__(self) -> None:
        self._by_sha256: dict[str, str] = {}

    def remember(self, secret: str) -> str:
        digest = secret_sha256(secret)
        self._by_sha256[digest] = secret
        return digest

    def secret(self, sha256: str) -> str | None:
        return self._by_sha256.get(sha256)

    def __len__(self) -> int:
        return len(self._by_sha256)

    def __repr__(self) -> str:
        return f"SecretBook({len(self)} secrets)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretBook holds raw secrets and is never serialised")


def make_finding(
    book: SecretBook,
    *,
    scanner: str,
    detector: str,
    file: str,
    line: int | None,
    status: Status,
    secret: str,
) -> Finding:
    """Hash and mask `secret`; only `book` keeps the raw value."""
    return Finding(
        scanner=scanner,
        detector=detector,
        file=file,
        line=line if line and line > 0 else None,
        status=status,
        sha256=book.remember(secret),
        preview=masked_preview(secret),
    )


class ScanFailed(UserError):
    """The scan could not run or its output cannot be trusted (exit 2); the export stops."""


@dataclass
class ParsedScan:
    """A scanner's findings (file = absolute path as reported) and its proof that it really ran."""

    findings: list[Finding]
    bytes_scanned: int
    secrets: SecretBook = field(default_factory=SecretBook, repr=False)


class ScannerAdapter(Protocol):
    """What a scanner module supplies: its command line, its version rule and its output parser."""

    name: str
    install_hint: str

    def command(self, binary: str, paths: Sequence[Path], *, verify: bool) -> list[str]: ...

    def check_version(self, version_output: str) -> str:
        """The version from `<binary> --version` output; raise ScanFailed for an unusable one."""
        ...

    def parse(self, *, stdout: str, stderr: str, returncode: int) -> ParsedScan: ...


BlockOn = Literal["verified", "any"]


@dataclass(frozen=True)
class ScanOptions:
    scanner: str = DEFAULT_SCANNER
    verify: bool = True
    block_on: BlockOn | None = None  # None: "verified" when verifying, else "any"
    rescan: bool = False

    @classmethod
    def from_flags(cls, *, scanner: str, block_on: str | None, no_verify: bool, rescan: bool) -> ScanOptions:
        """From the shared scanner flags (`exporter.cli_base.scanner_options`)."""
        policy: BlockOn | None = (
            "any" if block_on == "any" else "verified" if block_on == "verified" else None
        )
        return cls(scanner=scanner, verify=not no_verify, block_on=policy, rescan=rescan)

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
        # Only what changes the scanner's output; the policy is applied afterwards.
        return (("verify", str(self.verify).lower()),)


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
