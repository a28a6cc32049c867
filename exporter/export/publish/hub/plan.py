"""What one export does to one dataset repo, decided from the staged bundle and the repo's state.

Pure: no network. The same plan drives the commit and the `--dry-run` listing, so what a dry run
prints is what a push does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub._commit_api import CommitOperation

from exporter import __version__
from exporter.export.bundles import CARD_FILE, BundleFile, RepoBundle
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

    @property
    def create(self) -> bool:
        return not self.remote.exists

    @property
    def has_changes(self) -> bool:
        return bool(self.uploads or self.deletes or self.write_card)

    def upload_bytes(self) -> int:
        card = len(self.bundle.card.encode()) if self.write_card else 0
        return card + sum(self.bundle.local_path(file).stat().st_size for file in self.uploads)

    def operations(self) -> list[CommitOperation]:
        """The commit: deletions of replaced files, the new files, the card if absent, the index."""
        operations: list[CommitOperation] = [CommitOperationDelete(path) for path in self.deletes]
        operations += [CommitOperationAdd(file.path, self.bundle.local_path(file)) for file in self.uploads]
        if self.write_card:
            operations.append(CommitOperationAdd(CARD_FILE, self.bundle.card.encode()))
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
            parts.append("add dataset card")
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
) -> RepoPlan:
    """Per run of the bundle: add it, keep what is there, or replace it.

    A run already in the repo is replaced only with `replace`, or when what is there is a partial
    export (taken while the run was still recording) and this export holds a different snapshot
    (more lines, or the same lines now final). `snapshots` (run id -> the captures lines this export
    holds) is recorded in the index beside each run's files.
    """
    snapshots = snapshots or {}
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
    for run, files in sorted(files_by_run.items()):
        remote_paths = remote.runs.get(run)
        new_paths = [file.path for file in files]
        earlier = remote.snapshots.get(run)
        partial = earlier is not None and earlier.recording
        if remote_paths is None:
            added.append(run)
        elif _same_files(bundle, files, remote) or (partial and earlier == snapshots.get(run)):
            present.append(run)
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
        write_card=not remote.has_card,
        index=index_document(runs_after, snapshots_after, exporter_version=__version__),
    )


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
