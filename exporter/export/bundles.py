"""What the build stage produces: one folder per dataset repo, staged before anything is published.

Later stages (the secret scan, the local copy, the Hub push) only see these types, so a new kind
of dataset (rollouts) is one more `RepoBundle` and needs no change to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.shared.paths import contained
from exporter.shared.runs import CaptureSnapshot, RunDir

if TYPE_CHECKING:
    from exporter.scan.types import RunScan

CARD_FILE = "README.md"


@dataclass(frozen=True)
class BundleFile:
    # POSIX path relative to the bundle folder, e.g. "data/train-….parquet" or "traces/<run-id>/x.jsonl"
    path: str
    run_id: str  # the run this file's content came from


@dataclass(frozen=True)
class RepoBundle:
    kind: str  # "captures" | "traces" | "sessions" | "rollouts"
    name: str  # repo name without owner: f"{base}-captures", f"{base}-{agent}-traces"
    folder: Path  # staging folder holding README.md + the files
    files: tuple[BundleFile, ...]  # excluding README.md
    card: str  # README.md text (also written to folder/README.md): the card a new repo starts with
    agent: str | None = None
    base: str = ""  # the export's BASE (cards link the sibling datasets by it)
    # run id → what the card says about the run (export/build/run_stats.py), kept in the repo's index
    run_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    # front-matter keys agentcap keeps current on the card (export/card_sections.py), e.g. dataset_info
    front: dict[str, Any] = field(default_factory=dict)

    def repo_id(self, owner: str) -> str:
        return f"{owner}/{self.name}"

    def local_path(self, file: BundleFile) -> Path:
        return contained(self.folder, file.path)

    def total_bytes(self) -> int:
        return sum(self.local_path(file).stat().st_size for file in self.files)


@dataclass
class BuiltExport:
    owner: str
    base: str
    runs: list[RunDir]
    bundles: list[RepoBundle]
    staging: Path  # bundles live under staging/<owner>/<name>
    skipped: list[RunDir] = field(default_factory=list)  # runs with no recorded calls
    snapshots: dict[str, CaptureSnapshot] = field(default_factory=dict)  # run id -> the lines exported
    scans: dict[str, RunScan] = field(default_factory=dict)  # run id -> its scan, done by its build task
    # Session files the runs' build tasks wrote (sealed into <base>-sessions by `add_sessions`),
    # and per agent those converted from its native sessions (they join its traces dataset too).
    sessions: list[BundleFile] = field(default_factory=list)
    native_sessions: dict[str, list[BundleFile]] = field(default_factory=dict)
    card_scans: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # run id -> its scan result, for cards
    scan_section: str | None = None  # the cards' section on this export's scan (set by the gate)
    license: str | None = None  # --license: the cards' front matter `license`

    @property
    def partial_runs(self) -> list[str]:
        """Runs exported while still recording: later exports replace them."""
        return [run for run, snapshot in self.snapshots.items() if snapshot.recording]

    def bundle_folder(self, name: str) -> Path:
        return contained(self.staging, self.owner, name)

    def collection(self) -> dict[str, Any]:
        return {
            "title": self.base,
            "owner": self.owner,
            "items": [{"type": "dataset", "id": bundle.repo_id(self.owner)} for bundle in self.bundles],
        }


def write_bundle(
    *,
    kind: str,
    name: str,
    folder: Path,
    files: list[BundleFile],
    card: str,
    agent: str | None = None,
    base: str = "",
    run_stats: dict[str, dict[str, Any]] | None = None,
    front: dict[str, Any] | None = None,
) -> RepoBundle:
    """Seal a staged folder into a bundle: writes its card and lists its files in a stable order."""
    folder.mkdir(parents=True, exist_ok=True)
    contained(folder, CARD_FILE).write_text(card, encoding="utf-8")
    ordered = tuple(sorted(files, key=lambda file: file.path))
    return RepoBundle(
        kind=kind,
        name=name,
        folder=folder,
        files=ordered,
        card=card,
        agent=agent,
        base=base,
        run_stats=run_stats or {},
        front=front or {},
    )
