"""Paths built from data: one naming rule, one check for every write, no link ever followed.

A run directory is written by the agent we recorded, and by anyone else who can write into the
runs dir; a name in it (run id, agent) or a link in it must never decide where agentcap reads or
writes. The tools here are the only way the exporter turns data into paths:

- `sanitize_name`: the naming rule, the addon's own (`[A-Za-z0-9._-]`, at most 128 characters,
  not starting with `.` or `-`), so a name can never be `..`, absolute or hold a separator;
- `contained(root, *parts)`: where a write goes, refused unless it resolves (links followed) under
  `root`, which also catches a folder swapped for a link to elsewhere;
- `open_beneath(root, relative)`: opens a file below `root` with no link followed on the way, so a
  read never leaves a run and a write into a run never lands outside it;
- `regular_files(root)`: a directory's files, refusing links and special files rather than skipping.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath

from exporter.core.errors import UserError

MAX_NAME_LENGTH = 128
_OUTSIDE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(UserError):
    """A path built from data would leave its root, or a link or special file sits where data should."""


def sanitize_name(value: object) -> str:
    """The name as a safe path component: `../../etc/evil` → `etc-evil`; "" when nothing is left."""
    cleaned = _OUTSIDE_NAME.sub("-", str(value).strip())[:MAX_NAME_LENGTH]
    return cleaned.lstrip(".-")


def link_refusal(path: Path | str) -> UnsafePath:
    return UnsafePath(
        f"{path} is a symbolic link; agentcap never follows links in runs or agent sessions (one could "
        "point anywhere on this machine): replace it with the file itself or delete it"
    )


def contained(root: Path, *parts: str) -> Path:
    """`root/parts…` resolved, for writing; raises UnsafePath unless it stays under `root`."""
    base = root.resolve()
    target = base.joinpath(*parts)
    try:
        resolved = target.resolve()
    except (OSError, ValueError) as error:  # a NUL byte, a link loop
        raise UnsafePath(f"refusing to write {target!r}: {error}") from None
    if not resolved.is_relative_to(base):
        raise UnsafePath(f"refusing to write {target}: it resolves to {resolved}, outside {base}")
    return resolved


def _parts(relative: str | PurePosixPath) -> tuple[str, ...]:
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(part in (".", "..") for part in parts):
        raise UnsafePath(f"refusing the path {str(relative)!r}: not a plain relative path")
    return parts


def open_beneath(
    root: Path, relative: str | PurePosixPath, flags: int = os.O_RDONLY, *, mode: int = 0o600
) -> int:
    """A descriptor for `root/relative`, opened one component at a time with no link followed.

    `root` itself is opened as given (the caller chose it). With O_CREAT, missing folders are
    created (0700). Reading refuses anything that is not a regular file (a FIFO would block the
    export forever). Raises UnsafePath naming the first link met.
    """
    parts = _parts(relative)
    creating = bool(flags & os.O_CREAT)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = root
    try:
        for part in parts[:-1]:
            walked = walked / part
            if creating:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=directory)
            following = _open_step(part, _DIRECTORY_FLAGS, 0, directory, walked)
            os.close(directory)
            directory = following
        walked = walked / parts[-1]
        extra = 0 if creating else os.O_NONBLOCK
        descriptor = _open_step(
            parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | extra, mode, directory, walked
        )
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UnsafePath(f"{walked} is not a regular file (a pipe, socket or device); remove it")
    if not creating:
        os.set_blocking(descriptor, True)
    return descriptor


def _open_step(name: str, flags: int, mode: int, directory: int, shown: Path) -> int:
    try:
        return os.open(name, flags, mode, dir_fd=directory)
    except OSError as error:
        # O_NOFOLLOW on a link fails with ELOOP; O_DIRECTORY on a link to a file with ENOTDIR.
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and shown.is_symlink():
            raise link_refusal(shown) from None
        if error.errno == errno.ENOTDIR:
            raise UnsafePath(f"{shown} is a file where a folder should be; move it away") from None
        raise


def regular_files(root: Path) -> list[Path]:
    """Every regular file below `root`, sorted. A link or special file anywhere raises UnsafePath."""
    if root.is_symlink():
        raise link_refusal(root)
    found: list[Path] = []
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    raise link_refusal(path)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_file(follow_symlinks=False):
                    found.append(path)
                else:
                    raise UnsafePath(f"{path} is not a regular file (a pipe, socket or device); remove it")
    return sorted(found)


def copy_beneath(
    source_root: Path,
    source: str | PurePosixPath,
    target_root: Path,
    target: str,
    *,
    keep_times: bool = False,
) -> None:
    """Copy one file between two roots (the target root is created); neither side follows a link below its root."""
    reading = open_beneath(source_root, source)
    target_root.mkdir(parents=True, exist_ok=True)
    try:
        writing = open_beneath(target_root, target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o666)
        try:
            while chunk := os.read(reading, 1024 * 1024):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(writing, view) :]
            if keep_times:
                status = os.fstat(reading)
                os.utime(writing, ns=(status.st_atime_ns, status.st_mtime_ns))
        finally:
            os.close(writing)
    finally:
        os.close(reading)
