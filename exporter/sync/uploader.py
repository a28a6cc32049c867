"""Uploading a runs dir to a URL so that a reader of the URL never sees a torn record.

Rules (docs/scale.md explains them for operators):
- A finished run (run.json status other than `running`) is uploaded whole.
- A recording run uploads its JSONL files up to their last newline: complete lines only. Every
  upload replaces an object whole (object stores swap objects atomically; on a local filesystem
  the file is written beside and renamed), and a captures file only ever grows by whole lines, so
  any version a reader sees is a prefix of complete records.
- run.json goes first while the run records (nobody may take its captures for a finished run's)
  and last once it ended (a finished status is only visible once everything it describes is).
- Only what changed is uploaded: the remote size must match and the content hash recorded at the
  last upload must match the local bytes (size + mtime skip the hashing when nothing was touched).
  The record is written after every file, so a killed sync resumes with the file it was on.
- Dot files are never uploaded: `.fingerprint-key` (the addon's redaction key), scan caches,
  temporary files. Symlinks are never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.core.record import RUN_FILE
from exporter.shared.paths import open_beneath
from exporter.shared.runs import end_of_last_line, is_run_dir
from exporter.storage.location import StorageError, filesystem, shown, storage_errors

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

STATE_DIR = ".agentcap-sync"  # in the runs dir; a dot name, so it is never a run and never uploaded
COPY_BLOCK = 8 * 1024 * 1024
_LOCAL_PROTOCOLS = {"file", "local"}


@dataclass(frozen=True)
class Upload:
    root: Path  # the folder holding the run: the file is `root/relative`, opened with no link followed
    relative: str  # "<run dir name>/<path in the run>", POSIX
    size: int  # bytes to upload: a prefix of complete lines for a recording run's JSONL
    mtime_ns: int


@dataclass
class SyncReport:
    uploaded: list[tuple[str, int]] = field(default_factory=list)
    unchanged: int = 0
    runs: int = 0

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.uploaded)


@dataclass
class SyncState:
    """What this runs dir last uploaded to one URL: relative path -> size, sha256, mtime_ns."""

    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, runs_dir: Path, url: str) -> SyncState:
        name = hashlib.sha256(shown(url).encode()).hexdigest()[:16] + ".json"
        path = runs_dir / STATE_DIR / name
        try:
            files = json.loads(path.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            files = {}  # none yet (or damaged): sizes and hashes are checked against the URL again
        return cls(path=path, files=files if isinstance(files, dict) else {})

    def record(self, upload: Upload, sha256: str, url: str) -> None:
        self.files[upload.relative] = {"size": upload.size, "sha256": sha256, "mtime_ns": upload.mtime_ns}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"url": shown(url), "files": self.files}, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)


def run_uploads(run_dir: Path) -> list[Upload]:
    """The files of one run to upload, in upload order (see the module rules)."""
    recording = _status(run_dir / RUN_FILE) == "running"
    uploads: list[Upload] = []
    for path in _regular_files(run_dir):
        stat = path.stat()
        size = stat.st_size
        if recording and path.suffix == ".jsonl":
            size = end_of_last_line(path, size)
        if size == 0 and path.name != RUN_FILE and stat.st_size > 0:
            continue  # a recording JSONL without a complete line yet
        relative = f"{run_dir.name}/{path.relative_to(run_dir).as_posix()}"
        uploads.append(Upload(run_dir.parent, relative, size, stat.st_mtime_ns))
    run_json = [upload for upload in uploads if upload.relative == f"{run_dir.name}/{RUN_FILE}"]
    others = [upload for upload in uploads if upload not in run_json]
    return run_json + others if recording else others + run_json


def _status(path: Path) -> str | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info.get("status") if isinstance(info, dict) else None


def _regular_files(run_dir: Path) -> Iterator[Path]:
    for directory, subdirectories, names in os.walk(run_dir):  # os.walk never follows directory links
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(names):
            path = Path(directory) / name
            if not name.startswith(".") and not path.is_symlink() and path.is_file():
                yield path


class Destination:
    """The URL runs are synced to: its listing, and atomic whole-object uploads."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs: AbstractFileSystem
        self.fs, self.root = filesystem(self.url)
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = bool(_LOCAL_PROTOCOLS & set(protocols))

    def sizes(self) -> dict[str, int]:
        """Relative path -> size of everything already there (one listing)."""
        with storage_errors(self.url, "listing it"):
            if self.local and not self.fs.exists(self.root):
                return {}
            self.fs.invalidate_cache(self.root)
            found: dict[str, dict[str, Any]] = self.fs.find(self.root, detail=True, withdirs=False)
        prefix = self.root + "/"
        return {
            name[len(prefix) :]: int(info.get("size") or 0)
            for name, info in found.items()
            if name.startswith(prefix)
        }

    def put(self, staged: Path, relative: str) -> None:
        key = f"{self.root}/{relative}"
        with storage_errors(self.url, f"uploading {relative}"):
            if self.local:  # a plain file is visible while written: write beside, then rename into place
                self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
                partial = f"{key}.agentcap-partial"
                self.fs.put_file(str(staged), partial)
                self.fs.mv(partial, key)
            else:  # object stores replace an object whole, when its upload completes
                self.fs.put_file(str(staged), key)


def sync_once(
    runs_dir: Path,
    destination: Destination,
    *,
    report: Callable[[str, int], None] = lambda _path, _size: None,
) -> SyncReport:
    """One pass: upload what changed in every run under `runs_dir`; `report` hears of each file sent."""
    state = SyncState.load(runs_dir, destination.url)
    remote = destination.sizes()
    result = SyncReport()
    runs = [runs_dir] if is_run_dir(runs_dir) else [p for p in sorted(runs_dir.iterdir()) if _is_run(p)]
    with tempfile.TemporaryDirectory(prefix="agentcap-sync-") as scratch:
        for run_dir in runs:
            result.runs += 1
            for upload in run_uploads(run_dir):
                if _unchanged(upload, state, remote.get(upload.relative)):
                    result.unchanged += 1
                    continue
                staged = Path(scratch) / "upload"
                sha256 = _sha256_prefix(upload, copy_to=staged)
                destination.put(staged, upload.relative)
                state.record(upload, sha256, destination.url)
                result.uploaded.append((upload.relative, upload.size))
                report(upload.relative, upload.size)
    return result


def _is_run(path: Path) -> bool:
    return not path.name.startswith(".") and not path.is_symlink() and path.is_dir() and is_run_dir(path)


def _unchanged(upload: Upload, state: SyncState, remote_size: int | None) -> bool:
    known = state.files.get(upload.relative)
    if remote_size != upload.size or not known or known.get("size") != upload.size:
        return False
    if known.get("mtime_ns") == upload.mtime_ns:
        return True
    if _sha256_prefix(upload) != known.get("sha256"):
        return False
    known["mtime_ns"] = upload.mtime_ns  # touched, same bytes: skip the hashing next time
    return True


def _sha256_prefix(upload: Upload, copy_to: Path | None = None) -> str:
    """The sha256 of the bytes to upload (copied to `copy_to` on the way: the file may change later).

    Opened with no link followed (exporter.paths): a file swapped for a link since it was listed is
    refused, not read.
    """
    digest = hashlib.sha256()
    source_file = os.fdopen(open_beneath(upload.root, upload.relative), "rb")
    with source_file as source, copy_to.open("wb") if copy_to else contextlib.nullcontext() as out:
        remaining = upload.size
        while remaining and (block := source.read(min(COPY_BLOCK, remaining))):
            digest.update(block)
            if out is not None:
                out.write(block)
            remaining -= len(block)
    if remaining:
        raise StorageError(
            f"{upload.root / upload.relative}: shrank while being read; was the run rewritten? run sync again"
        )
    return digest.hexdigest()
