"""What one export does to one dataset repo, decided from the staged bundle and the repo's state.

Pure: no network. The same plan drives the commit and the `--dry-run` listing, so what a dry run
prints is what a push does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub._commit_api import CommitOperation

from exporter import __version__
from exporter.export.bundles import CARD_FILE, BundleFile, RepoBundle
from exporter.export.card_sections import current_card
from exporter.export.publish.destination import INDEX_PATH, RemoteRepo, index_document
from exporter.shared.runs import CaptureSnapshot

FILE_NOUNS = {"captures": "parquet file", "traces": "trace file", "sessions": "session file"}
RUN_IDS_IN_MESSAGE = 3
UPDATED_NOTE = "run {run} was exported while still recording; replaced by this export"


@dataclass
class RepoPlan:
    bundle: RepoBundle
    repo_id: str
    remote: RemoteRepo
    added_runs: list[str]
    replaced_runs: list[str]
    skipped_runs: list[str]  # already in the repo from an earlier export; kept because no --replace
    updated_runs: list[str]  # their earlier export was a partial snapshot: replaced without --replace
    present_runs: list[str]  # already there with exactly these files (a re-run after an interrupted push)
    uploads: list[BundleFile]
    deletes: list[str]
    write_card: bool
    index: bytes
    card: str = ""  # the README.md this plan writes (when write_card)

    @property
    def create(self) -> bool:
        return not self.remote.exists

    @property
    def has_changes(self) -> bool:
        return bool(self.uploads or self.deletes or self.write_card)

    def upload_bytes(self) -> int:
        card = len(self.card.encode()) if self.write_card else 0
        return card + sum(self.bundle.local_path(file).stat().st_size for file in self.uploads)

    def operations(self) -> list[CommitOperation]:
        """The commit: deletions of replaced files, the new files, the card if absent, the index."""
        operations: list[CommitOperation] = [CommitOperationDelete(path) for path in self.deletes]
        operations += [CommitOperationAdd(file.path, self.bundle.local_path(file)) for file in self.uploads]
        if self.write_card:
            operations.append(CommitOperationAdd(CARD_FILE, self.card.encode()))
        operations.append(CommitOperationAdd(INDEX_PATH, self.index))
        return operations

    def commit_message(self) -> str:
        noun = FILE_NOUNS.get(self.bundle.kind, "file")
        parts = []
        new_files = [file for file in self.uploads if file.run_id in self.added_runs]
        if self.added_runs:
            parts.append(f"add {_count(len(new_files), noun)} from {_runs_phrase(self.added_runs)}")
        if self.replaced_runs:
            parts.append(f"replace {_runs_phrase(self.replaced_runs)}")
        if self.updated_runs:
            parts.append(f"update {_runs_phrase(self.updated_runs)} (exported while still recording)")
        if self.write_card:
            parts.append("update dataset card" if self.remote.has_card else "add dataset card")
        return "agentcap export: " + "; ".join(parts)

    def commit_description(self) -> str:
        by_run: dict[str, list[str]] = defaultdict(list)
        for file in self.uploads:
            by_run[file.run_id].append(file.path)
        lines = [f"Pushed by agentcap {__version__}."]
        for run in self.added_runs + self.replaced_runs + self.updated_runs:
            verb = "added" if run in self.added_runs else "replaced with"
            lines.append(f"- run `{run}`: {verb} " + ", ".join(f"`{path}`" for path in by_run[run]))
        if self.deletes:
            lines.append("- deleted (replaced runs): " + ", ".join(f"`{path}`" for path in self.deletes))
        return "\n".join(lines)


def plan_repo(
    bundle: RepoBundle,
    *,
    owner: str,
    remote: RemoteRepo,
    replace: bool,
    snapshots: Mapping[str, CaptureSnapshot] | None = None,
    scans: Mapping[str, dict[str, Any]] | None = None,
    scan_section: str | None = None,
    license_id: str | None = None,
) -> RepoPlan:
    """Per run of the bundle: add it, keep what is there, or replace it; and the card to match.

    A run already in the repo is replaced only with `replace`, or when what is there is a partial
    export (taken while the run was still recording) and this export holds a different snapshot
    (more lines, or the same lines now final). `snapshots` (run id -> the captures lines this export
    holds) is recorded in the index beside each run's files, and so are the run's card statistics
    (the bundle's, with `scans`' result). The card's generated parts then describe every run the
    repo holds after this commit (exporter/cards.py `current_card`); the rest of the card is kept.
    """
    snapshots = snapshots or {}
    scans = scans or {}
    files_by_run: dict[str, list[BundleFile]] = defaultdict(list)
    for file in bundle.files:
        files_by_run[file.run_id].append(file)
    added: list[str] = []
    replaced: list[str] = []
    updated: list[str] = []
    skipped: list[str] = []
    present: list[str] = []
    uploads: list[BundleFile] = []
    deletes: list[str] = []
    runs_after = {run: list(paths) for run, paths in remote.runs.items()}
    snapshots_after = dict(remote.snapshots)
    stats_after = {run: stats for run, stats in remote.stats.items() if run in runs_after}

    def fresh_stats(run: str) -> None:
        if run in bundle.run_stats:
            stats_after[run] = bundle.run_stats[run] | ({"scan": scans[run]} if run in scans else {})

    for run, files in sorted(files_by_run.items()):
        remote_paths = remote.runs.get(run)
        new_paths = [file.path for file in files]
        earlier = remote.snapshots.get(run)
        partial = earlier is not None and earlier.recording
        if remote_paths is None:
            added.append(run)
        elif _same_files(bundle, files, remote) or (partial and earlier == snapshots.get(run)):
            present.append(run)
            if run not in stats_after:  # published by an agentcap that kept no stats: ours describe it
                fresh_stats(run)
            continue
        elif replace or partial:
            (replaced if replace else updated).append(run)
            deletes += [path for path in remote_paths if path not in new_paths]
        else:
            skipped.append(run)
            continue
        uploads += files
        runs_after[run] = new_paths
        snapshots_after.pop(run, None)
        if run in snapshots:
            snapshots_after[run] = snapshots[run]
        stats_after.pop(run, None)
        fresh_stats(run)
    card = _card(
        bundle,
        remote,
        {run: stats_after.get(run) for run in runs_after},
        owner=owner,
        license_id=license_id,
        # The scan section describes the export that put data in: re-pushing nothing keeps it.
        scan_section=scan_section if uploads else None,
    )
    return RepoPlan(
        bundle=bundle,
        repo_id=bundle.repo_id(owner),
        remote=remote,
        added_runs=added,
        replaced_runs=replaced,
        updated_runs=updated,
        skipped_runs=skipped,
        present_runs=present,
        uploads=uploads,
        deletes=sorted(deletes),
        write_card=card is not None and card != remote.card,
        index=index_document(runs_after, snapshots_after, exporter_version=__version__, stats=stats_after),
        card=card or "",
    )


def _card(
    bundle: RepoBundle,
    remote: RemoteRepo,
    runs: Mapping[str, dict[str, Any] | None],
    *,
    owner: str,
    license_id: str | None,
    scan_section: str | None,
) -> str | None:
    """The card to publish; None to leave the repo's card alone (it could not be read as text)."""
    if remote.has_card and remote.card is None:
        return None
    base = remote.card if remote.card is not None else bundle.card
    return current_card(bundle, base, runs, owner=owner, license_id=license_id, scan_section=scan_section)


def _same_files(bundle: RepoBundle, files: list[BundleFile], remote: RemoteRepo) -> bool:
    """The run's remote files are exactly these (paths and sizes). Captures file names carry a
    hex minted per export, so this only holds for the export that wrote them."""
    remote_paths = sorted(remote.runs.get(files[0].run_id, []))
    if remote_paths != sorted(file.path for file in files):
        return False
    return all(remote.files.get(file.path) == bundle.local_path(file).stat().st_size for file in files)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _runs_phrase(runs: list[str]) -> str:
    if len(runs) <= RUN_IDS_IN_MESSAGE:
        return ("run " if len(runs) == 1 else "runs ") + ", ".join(runs)
    return _count(len(runs), "run")
