"""What the gate scans for a run: the plain-text files an export publishes, and their content hash.

captures.jsonl is scanned rather than the parquet made from it: scanners read bytes, and zstd
pages hide strings. run.json feeds columns and metadata, traces/ is bundled as-is. The scan
cache file sits beside them and is never an input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CACHE_FILE_NAME = ".agentcap-scan.json"
_PUBLISHED_FILES = ("captures.jsonl", "run.json")
_PUBLISHED_DIRS = ("traces",)


@dataclass(frozen=True)
class ScanInputs:
    """`paths` go to the scanner (files and whole directories); `content_sha256` covers every file in them."""

    root: Path
    paths: tuple[Path, ...]
    files: int
    bytes: int
    content_sha256: str


def scan_inputs(run_path: Path) -> ScanInputs:
    root = run_path.resolve()
    paths = [root / name for name in _PUBLISHED_FILES if (root / name).is_file()]
    paths += [root / name for name in _PUBLISHED_DIRS if (root / name).is_dir()]
    manifest = hashlib.sha256()
    files = total = 0
    for file in sorted(_files_under(paths)):
        relative = file.relative_to(root).as_posix()
        with file.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = file.stat().st_size
        manifest.update(f"{relative}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
        files += 1
        total += size
    return ScanInputs(
        root=root, paths=tuple(paths), files=files, bytes=total, content_sha256=manifest.hexdigest()
    )


def _files_under(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [child for child in path.rglob("*") if child.is_file() and child.name != CACHE_FILE_NAME]
        else:
            files.append(path)
    return files
