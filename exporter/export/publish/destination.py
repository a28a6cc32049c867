"""What a published dataset already holds, local folder or Hub repo: its files and which run each came from.

One reader for both (`read_published`, over an fsspec filesystem: the local one, or huggingface_hub's
HfFileSystem pinned to the repo's head), so a local export and a push plan against the same view.
Runs are found three ways, cheapest first, so repos we did not write (or whose index a user
deleted) are still understood:
1. the index file this exporter keeps in every repo (`.agentcap/index.json`, run id → files),
   updated in the same commit as the files it lists, so it is never out of step with them;
2. the path: trace files live under `traces/<run-id>/`;
3. the parquet footer: every captures file records `run_id` in its key-value metadata (read with
   ranged requests, a few KB per file, only for files the index does not list).

The index entry and the footer also carry the captures snapshot the files hold (`capture_snapshot`):
a run exported while still recording is marked so, and the next export replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from huggingface_hub import HfApi, HfFileSystem
from huggingface_hub.errors import RepositoryNotFoundError

from exporter.export.bundles import CARD_FILE
from exporter.shared.runs import SNAPSHOT_KEY, CaptureSnapshot

INDEX_PATH = ".agentcap/index.json"
INDEX_SCHEMA = "agentcap.hub-index/1"
TRACES_PREFIX = "traces/"
FOOTER_READERS = 8


@dataclass
class RemoteRepo:
    repo_id: str
    exists: bool
    private: bool | None = None
    sha: str | None = None
    files: dict[str, int] = field(default_factory=dict)  # path -> size at `sha`
    runs: dict[str, list[str]] = field(default_factory=dict)  # run id -> its files at `sha`
    # run id -> the captures snapshot its files hold, when published (see runs.CaptureSnapshot)
    snapshots: dict[str, CaptureSnapshot] = field(default_factory=dict)
    known: bool = True  # False when the state could not be read (offline dry run): assume empty

    @property
    def has_card(self) -> bool:
        return CARD_FILE in self.files


def unknown_remote(repo_id: str) -> RemoteRepo:
    return RemoteRepo(repo_id, exists=False, known=False)


def read_remote(api: HfApi, repo_id: str, *, warn: Callable[[str], None]) -> RemoteRepo:
    """A Hub repo, read-only: its head sha, then everything at that sha (`read_published`)."""
    try:
        info = api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return RemoteRepo(repo_id, exists=False)
    filesystem = HfFileSystem(endpoint=api.endpoint, token=api.token, skip_instance_cache=True)
    found = read_published(filesystem, f"datasets/{repo_id}@{info.sha}", label=repo_id, warn=warn)
    return RemoteRepo(repo_id, exists=True, private=info.private, sha=info.sha, **found.fields())


def read_folder(folder: Path, repo_id: str, *, warn: Callable[[str], None]) -> RemoteRepo:
    """A local dataset folder, described exactly like a Hub repo (`read_published`)."""
    if not folder.is_dir():
        return RemoteRepo(repo_id, exists=False)
    found = read_published(LocalFileSystem(), str(folder), label=str(folder), warn=warn)
    return RemoteRepo(repo_id, exists=True, **found.fields())


@dataclass
class Published:
    files: dict[str, int]  # path -> size
    runs: dict[str, list[str]]  # run id -> its files
    snapshots: dict[str, CaptureSnapshot]  # run id -> the captures snapshot its files hold

    def fields(self) -> dict[str, Any]:
        return {"files": self.files, "runs": self.runs, "snapshots": self.snapshots}


def read_published(
    filesystem: AbstractFileSystem, root: str, *, label: str, warn: Callable[[str], None]
) -> Published:
    """The files under `root`, and which run each belongs to.

    Read errors of the filesystem propagate (a push retries them); a damaged index or a file that is
    not parquet is only warned about: paths and footers still tell the runs apart.
    """
    prefix = filesystem._strip_protocol(root).rstrip("/") + "/"
    files = {
        str(name).removeprefix(prefix): int(entry["size"])
        for name, entry in filesystem.find(root, detail=True).items()
        if entry["type"] == "file"
    }
    index = _read_index(filesystem, prefix, label, warn=warn) if INDEX_PATH in files else {}
    owners = {path: run for run, entry in index.items() for path in entry.files if path in files}
    snapshots = {run: entry.snapshot for run, entry in index.items() if entry.snapshot}
    for path in files:
        if path not in owners and path.startswith(TRACES_PREFIX) and path.count("/") >= 2:
            owners[path] = path.split("/", 2)[1]
    unattributed = [path for path in files if path not in owners and path.endswith(".parquet")]
    for path, footer in _footers(filesystem, prefix, label, unattributed, warn=warn).items():
        if footer.run is not None:
            owners[path] = footer.run
            if footer.snapshot is not None:
                snapshots.setdefault(footer.run, footer.snapshot)
    runs: dict[str, list[str]] = {}
    for path, run in sorted(owners.items()):
        runs.setdefault(run, []).append(path)
    return Published(files, runs, snapshots)


@dataclass(frozen=True)
class IndexEntry:
    """A run in the index: its files, and the captures snapshot they hold (None: not recorded)."""

    files: list[str]
    snapshot: CaptureSnapshot | None = None


def index_document(
    runs: dict[str, list[str]], snapshots: dict[str, CaptureSnapshot], *, exporter_version: str
) -> bytes:
    """The index file's bytes: stable order so an unchanged index is an unchanged blob."""
    entries: dict[str, dict[str, Any]] = {}
    for run, paths in sorted(runs.items()):
        entries[run] = {"files": sorted(paths)}
        if run in snapshots:
            entries[run][SNAPSHOT_KEY] = snapshots[run].as_json()
    document = {"schema": INDEX_SCHEMA, "written_by": f"agentcap {exporter_version}", "runs": entries}
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


def parse_index(document: Any) -> dict[str, IndexEntry]:
    """The index file's runs; raises (ValueError, KeyError, TypeError, AttributeError) when malformed."""
    runs = document["runs"] if document.get("schema") == INDEX_SCHEMA else {}
    return {
        str(run): IndexEntry(
            [str(path) for path in entry["files"]], CaptureSnapshot.from_json(entry.get(SNAPSHOT_KEY))
        )
        for run, entry in runs.items()
    }


@dataclass(frozen=True)
class Footer:
    """What a parquet footer says about the file's origin."""

    run: str | None
    snapshot: CaptureSnapshot | None


def footer_of(metadata: dict[bytes, bytes] | None) -> Footer:
    values = metadata or {}
    run = values.get(b"run_id")
    snapshot = values.get(SNAPSHOT_KEY.encode())
    return Footer(
        run.decode() if run else None,
        CaptureSnapshot.from_json(_json_or_none(snapshot)) if snapshot else None,
    )


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _read_index(
    filesystem: AbstractFileSystem, prefix: str, label: str, *, warn: Callable[[str], None]
) -> dict[str, IndexEntry]:
    try:
        return parse_index(json.loads(filesystem.cat_file(prefix + INDEX_PATH)))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        warn(f"{label}: ignoring unreadable {INDEX_PATH} ({error}); finding runs from paths and footers")
        return {}


def _footers(
    filesystem: AbstractFileSystem,
    prefix: str,
    label: str,
    paths: Iterable[str],
    *,
    warn: Callable[[str], None],
) -> dict[str, Footer]:
    """Each parquet file's footer, read in parallel (on the Hub: ranged reads of a few KB each)."""
    paths = list(paths)
    if not paths:
        return {}

    def footer(path: str) -> tuple[str, Footer]:
        try:
            with filesystem.open(prefix + path, "rb", block_size=64 * 1024) as handle:
                return path, footer_of(pq.ParquetFile(handle).metadata.metadata)
        except ValueError as error:  # not parquet, or no footer: not ours to manage. Read errors propagate.
            warn(f"{label}: cannot read the parquet footer of {path} ({error}); leaving it alone")
            return path, Footer(None, None)

    with ThreadPoolExecutor(max_workers=min(FOOTER_READERS, len(paths))) as pool:
        return dict(pool.map(footer, paths))
