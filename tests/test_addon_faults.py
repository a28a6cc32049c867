"""Crash and fault suite: the real mitmdump under concurrent load, killed, starved and refilled.

Each test compares three things: the calls the clients saw complete (their request ids), the records in
captures.jsonl, and run.json's counts. None lost, none corrupt, none twice, counts true.

CI runs bounded sizes; AGENTCAP_SOAK=1 runs the soak test at full size (10 minutes, 200 streams).
"""

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_model_server import FakeModelServer
from mitmdump_process import (
    Load,
    Mitmdump,
    assert_counts_true,
    kill_pid,
    read_run,
    wait_for_exit,
)
from proxy_harness import assert_no_canary

SOAK = os.environ.get("AGENTCAP_SOAK") == "1"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def assert_all_recorded(run_dir: Path, completed: list[str]) -> None:
    run = read_run(run_dir)
    assert run.bad_lines == [], f"corrupt or cut lines: {[line[:80] for line in run.bad_lines]}"
    missing = set(completed) - set(run.request_ids)
    assert not missing, f"{len(missing)} of {len(completed)} calls the clients saw complete are not on disk"
    assert_counts_true(run)
    assert run.info["ended_at"] is not None


def spool_leftovers(runs: Path) -> list[Path]:
    spool = runs / ".spool"
    return sorted(spool.rglob("*")) if spool.exists() else []


@pytest.mark.parametrize(("clients", "body_bytes", "calls"), [(100, 20_000, 400), (4, 200_000, 50)])
def test_kill_9_proxy_keeps_every_completed_call(
    upstream: FakeModelServer, tmp_path: Path, clients: int, body_bytes: int, calls: int
) -> None:
    runs = tmp_path / "runs"
    with Mitmdump(upstream.url, runs, run="killed") as proxy:
        writers = proxy.writer_pids()
        load = Load(proxy.port, clients, body_bytes).start()
        load.wait_for(calls)
        proxy.kill()
        completed = load.stop()
        wait_for_exit(writers)  # the writer outlives the proxy and finishes what was journaled
    assert len(completed) >= calls
    assert_all_recorded(runs / "killed", completed)
    assert read_run(runs / "killed").info["status"] == "interrupted"
    assert spool_leftovers(runs) == []
    assert_no_canary(runs)


def test_kill_9_writer_is_replaced_and_nothing_is_lost(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with Mitmdump(upstream.url, runs, run="writer-killed") as proxy:
        load = Load(proxy.port, 20).start()
        for target in (100, 200):
            load.wait_for(target)
            [writer] = proxy.writer_pids()
            kill_pid(writer)
        load.wait_for(300)
        completed = load.stop()
        assert proxy.stop() == 0
        log = proxy.log()
    assert "writer process died" in log.lower()
    assert "Traceback" not in log
    assert_all_recorded(runs / "writer-killed", completed)
    assert read_run(runs / "writer-killed").info["status"] == "complete"
    assert spool_leftovers(runs) == []


def test_kill_9_of_proxy_and_writer_is_replayed_at_the_next_start(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with Mitmdump(upstream.url, runs, run="both-killed") as proxy:
        load = Load(proxy.port, 20).start()
        load.wait_for(200)
        [writer] = proxy.writer_pids()
        kill_pid(writer)
        proxy.kill()
        completed = load.stop()
    assert spool_leftovers(runs), "the test means to leave an unconsumed journal behind"
    with Mitmdump(upstream.url, runs, run="next") as proxy:
        Load(proxy.port, 2).start().wait_for(5)
        assert proxy.stop() == 0
        assert "replay" in proxy.log().lower()
    assert_all_recorded(runs / "both-killed", completed)
    assert read_run(runs / "both-killed").info["status"] == "interrupted"
    assert spool_leftovers(runs) == []


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[tuple[Path, int | None]]:
    """A 3 MB tmpfs the test mounts; where mounting is not allowed, a 3 MB file size limit instead."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)], capture_output=True
    )
    try:
        yield mount, None if mounted.returncode == 0 else 3 * 1024 * 1024
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_never_leaves_a_partial_line_and_counts_stay_true(
    upstream: FakeModelServer, small_filesystem: tuple[Path, int | None]
) -> None:
    mount, fsize = small_filesystem
    runs = mount / "runs"
    with Mitmdump(upstream.url, runs, run="full", fsize=fsize, log_dir=mount.parent) as proxy:
        load = Load(proxy.port, 8, body_bytes=20_000, stream=False).start()
        load.wait_for(250)  # ~10 MB of records for 3 MB of space
        completed = load.stop()
        assert proxy.stop() == 0
        log = proxy.log()
    run = read_run(runs / "full")
    assert run.bad_lines == []
    assert_counts_true(run)
    assert 0 < len(run.records) < len(completed)
    assert set(run.request_ids) <= set(completed)
    counts = run.info["counts"]
    assert counts["recorded"] + counts["lost"] == len(completed), counts  # every call is in one of the two
    assert run.info["status"] == "complete"
    assert "Traceback" not in log


def test_lowered_open_file_limit_with_many_runs(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with Mitmdump(upstream.url, runs, run="main", nofile=256) as proxy:
        for index in range(300):
            load = Load(
                proxy.port, 1, body_bytes=100, stream=False, headers={"x-agentcap-run": f"r-{index:03d}"}
            )
            load.start().wait_for(1)
            load.stop()
        main = Load(proxy.port, 1, body_bytes=100).start()
        main.wait_for(3)
        completed_main = main.stop()
        assert proxy.stop() == 0
        log = proxy.log()
    assert "Too many open files" not in log
    for index in range(300):
        run = read_run(runs / f"r-{index:03d}")
        assert run.bad_lines == [] and len(run.records) >= 1, index
        assert_counts_true(run)
        assert run.info["status"] == "complete"
    assert_all_recorded(runs / "main", completed_main)
    assert read_run(runs / "main").info["status"] == "complete"


def test_a_cut_last_line_is_repaired_before_appending(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    completed = []
    with Mitmdump(upstream.url, runs, run="cut") as proxy:
        load = Load(proxy.port, 1).start()
        load.wait_for(2)
        completed += load.stop()
        assert proxy.stop() == 0
    captures = runs / "cut" / "captures.jsonl"
    last_line = captures.read_bytes().splitlines()[-1]
    with captures.open("ab") as handle:  # a writer killed in the middle of a line
        handle.write(last_line[: len(last_line) // 2])
    with Mitmdump(upstream.url, runs, run="cut") as proxy:
        load = Load(proxy.port, 1).start()
        load.wait_for(2)
        completed += load.stop()
        assert proxy.stop() == 0
        assert "cut last line" in proxy.log()
    assert_all_recorded(runs / "cut", completed)
    run = read_run(runs / "cut")
    assert sorted(r["seq"] for r in run.records) == list(range(1, len(run.records) + 1))


@pytest.mark.slow
@pytest.mark.timeout(1800 if SOAK else 300)  # the full soak runs 10 minutes, plus the final replay
def test_soak_kill_and_restart_cycles(upstream: FakeModelServer, tmp_path: Path) -> None:
    """Cycles of load with kill -9 of the proxy, the writer or both, then a clean stop; nothing lost."""
    duration, clients = (600.0, 200) if SOAK else (20.0, 20)
    runs = tmp_path / "runs"
    faults = ["proxy", "writer", "both", "clean"]
    rng = random.Random(7)
    completed: list[str] = []
    started = time.monotonic()
    cycle = 0
    while time.monotonic() - started < duration or cycle < len(faults):
        fault = faults[cycle % len(faults)]
        cycle += 1
        with Mitmdump(upstream.url, runs, run="soak") as proxy:
            writers = proxy.writer_pids()
            load = Load(proxy.port, clients, body_bytes=rng.choice([2_000, 20_000, 100_000])).start()
            load.wait_for(rng.randint(clients, clients * 4))
            if fault in ("writer", "both"):
                for writer in writers:
                    kill_pid(writer)
            if fault in ("proxy", "both"):
                proxy.kill()
                completed += load.stop()
                wait_for_exit(writers)
            else:
                load.wait_for(len(load.completed) + clients)
                completed += load.stop()
                assert proxy.stop() == 0
    with Mitmdump(upstream.url, runs, run="soak") as proxy:  # replays whatever the last cycle left
        assert proxy.stop() == 0
    assert_all_recorded(runs / "soak", completed)
    records = read_run(runs / "soak").records
    assert len({r["seq"] for r in records}) == len(records)
    assert spool_leftovers(runs) == []
    print(f"soak: {cycle} cycles, {len(completed)} calls completed, {len(records)} records")
    assert json.loads((runs / "soak" / "run.json").read_text())["status"] == "complete"
    shutil.rmtree(runs)
