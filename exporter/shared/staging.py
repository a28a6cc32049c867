"""Private working directories for unredacted copies: 0700, beside the output, gone on every exit we see.

The export builds the parquet (and the scan renders its text) before the secret scan has decided
anything, so a working directory can hold every secret of a run. It therefore lives beside the
output (never in the shared system temp directory), is readable by its owner only, and is removed
when the command ends: normally, on an error, on Ctrl-C, and on SIGTERM/SIGHUP, which unwind
the stack like an error. A SIGKILL cannot be caught: the next command that works in the same
parent removes what a dead process left behind (its process id is in the directory name).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

PREFIX = ".agentcap-staging-"
_UNWINDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def private_workdir(parent: Path) -> Iterator[Path]:
    """A new 0700 directory in `parent`, removed when the block ends (with `parent` if it was made for it)."""
    missing = [folder for folder in (parent, *parent.parents) if not folder.exists()]  # deepest first
    path = new_private_dir(parent)
    try:
        with _signals_unwind():
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        for folder in missing:  # a failed export leaves no empty output folder behind
            try:
                folder.rmdir()
            except OSError:
                break


def new_private_dir(parent: Path) -> Path:
    """A new 0700 directory in `parent` (created if needed), named for this process; what dead
    processes left there is removed first. The caller removes it (see `private_workdir`)."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))  # mkdtemp: mode 0700


def remove_stale(parent: Path) -> list[Path]:
    """Remove the working directories in `parent` whose process is gone; returns what was removed."""
    removed = []
    for child in parent.glob(PREFIX + "*"):
        owner = child.name.removeprefix(PREFIX).split("-", 1)[0]
        if child.is_symlink() or not child.is_dir() or not owner.isdigit() or _alive(int(owner)):
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit, so every `finally` between here and the top runs.

    Only the main thread can set handlers; elsewhere (a test's worker thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {number: signal.signal(number, unwind) for number in _UNWINDING_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
