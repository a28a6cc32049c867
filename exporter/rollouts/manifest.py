"""Manifest phase: discover the units to hydrate (files, or sessions inside databases) without parsing.

The number of units is the dataset size as DataDesigner counts it. Units come out sorted by path (then
session), so two runs over the same sources produce rows in the same order.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from exporter.core.errors import UserError
from exporter.rollouts.base import Unit
from exporter.rollouts.registry import AUTO, FORMATS, detect, get_format
from exporter.rollouts.sqlite_source import SnapshotStore

# What `auto` walks when no --file-pattern is given: every JSONL file and every database.
AUTO_PATTERNS = ("*.jsonl", "*.db")


def default_sources(format_name: str) -> list[Path]:
    """The standard locations of one agent (or of every agent for `auto`) that exist here."""
    formats = FORMATS.values() if format_name == AUTO else [get_format(format_name)]
    return [root for fmt in formats for root in fmt.default_roots() if root.exists()]


def build_manifest(
    sources: Sequence[Path],
    format_name: str,
    *,
    snapshots: SnapshotStore,
    warn: Callable[[str], None],
    recursive: bool = True,
    file_pattern: str | None = None,
) -> list[Unit]:
    """Every unit under `sources` (files or directories) for `format_name` (or `auto`)."""
    fixed = None if format_name == AUTO else get_format(format_name)
    units: list[Unit] = []
    for source in sources:
        if not source.exists():
            raise UserError(f"{source}: no such file or directory; pass an existing trace file or directory")
        patterns = (file_pattern,) if file_pattern else ((fixed.file_pattern,) if fixed else AUTO_PATTERNS)
        files = [source] if source.is_file() else list(_walk(source, patterns, recursive))
        by_format: dict[str, list[Path]] = {}
        undetected: list[Path] = []
        for path in files:
            fmt = fixed or detect(path)
            if fmt is None:
                undetected.append(path)
            else:
                by_format.setdefault(fmt.name, []).append(path)
        if undetected:
            shown = ", ".join(str(p) for p in undetected[:3]) + (" …" if len(undetected) > 3 else "")
            warn(f"skipped {len(undetected)} file(s) that are no known trace format: {shown}")
        for name, paths in by_format.items():
            units += FORMATS[name].plan_units(source, paths, snapshots, warn)
    return units


def _walk(root: Path, patterns: Sequence[str], recursive: bool) -> Iterator[Path]:
    """Files under `root` whose name matches a pattern, sorted; symlinked directories are not followed."""
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        if not recursive:
            subdirectories.clear()
        for name in sorted(names):
            if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                yield Path(directory) / name
