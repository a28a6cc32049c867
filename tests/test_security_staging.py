"""Issue 11, finding 4: a killed export leaves no unredacted copy in the system temp directory.

The real `agentcap-export` runs as a process; the fake trufflehog holds it in the scan stage (the
staged parquet exists then) and tells the test so through a FIFO, so the kill lands mid-export.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import CANARY_KEY, make_record, write_run
from scan_fakes import FakeTrufflehog

EXPORT = Path(sys.executable).parent / "agentcap-export"
STAGING_PREFIX = ".agentcap-staging-"


@pytest.fixture
def held(tmp_path: Path, fake: FakeTrufflehog) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """An export process held in its scan stage, and the pid of the scanner it waits for."""
    process, scanner = start_export_held_in_the_scan(tmp_path, fake)
    yield process, scanner
    for pid in (process.pid, scanner):  # whatever the test did, nothing keeps running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=60)


def start_export_held_in_the_scan(
    tmp_path: Path, fake: FakeTrufflehog
) -> tuple[subprocess.Popen[bytes], int]:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [make_record(messages=[{"role": "user", "content": f"key {CANARY_KEY}"}])])
    ready = tmp_path / "scanner-ready"
    os.mkfifo(ready)
    fake.scenario(mode="hang", hang_on="captures.jsonl")
    system_temp = tmp_path / "system-tmp"
    system_temp.mkdir()
    process = subprocess.Popen(
        [str(EXPORT), str(runs), "-o", str(tmp_path / "out"), "--no-verify"],
        env=os.environ | {"FAKE_TRUFFLEHOG_READY": str(ready), "TMPDIR": str(system_temp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with ready.open() as fifo:  # blocks until the scanner runs: the build is staged by then
        scanner = int(fifo.readline())
    return process, scanner


def canary_files(*roots: Path) -> list[Path]:
    return [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and CANARY_KEY.encode() in path.read_bytes()
    ]


def staging_dirs(output: Path) -> list[Path]:
    return sorted(output.glob(STAGING_PREFIX + "*")) if output.is_dir() else []


def test_sigterm_mid_export_removes_the_staging(
    tmp_path: Path, held: tuple[subprocess.Popen[bytes], int]
) -> None:
    process, scanner = held
    output = tmp_path / "out"
    [staging] = staging_dirs(output)  # staged beside the output, private
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    assert canary_files(staging), "the staged parquet is what must not survive"

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode != 0
    assert staging_dirs(output) == []
    assert canary_files(output, tmp_path / "system-tmp") == []
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert b"Traceback" not in stderr
    with pytest.raises(ProcessLookupError):  # the scanner went with the export
        os.kill(scanner, 0)


def test_a_sigkilled_export_leaves_only_a_private_staging_the_next_export_removes(
    tmp_path: Path, fake: FakeTrufflehog, held: tuple[subprocess.Popen[bytes], int]
) -> None:
    process, scanner = held
    process.kill()
    process.wait(timeout=60)
    os.kill(scanner, signal.SIGKILL)  # orphaned by the kill: nothing could have stopped it
    output = tmp_path / "out"

    [left] = staging_dirs(output)
    assert stat.S_IMODE(left.stat().st_mode) == 0o700
    assert list((tmp_path / "system-tmp").iterdir()) == []

    fake.scenario()
    again = subprocess.run(
        [str(EXPORT), str(tmp_path / "runs"), "-o", str(output), "--no-verify", "--no-scan"],
        env=os.environ | {"TMPDIR": str(tmp_path / "system-tmp")},
        capture_output=True,
        timeout=120,
    )

    assert again.returncode == 0, again.stderr.decode()
    assert staging_dirs(output) == []
    assert not left.exists()
