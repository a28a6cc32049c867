"""Parsing in worker processes (`--jobs`) gives exactly the rows, order and warnings of one process."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rollout_fixtures import CLAUDE_SESSION, build_every_format, claude_basic_lines, write_jsonl

from exporter.cli import main
from exporter.core.errors import UserError
from exporter.rollouts import parallel
from exporter.rollouts.hydrate import iter_rows
from exporter.rollouts.manifest import build_manifest
from exporter.rollouts.sqlite_source import SnapshotStore


def build_mixed_corpus(root: Path) -> None:
    """Every format, plus what exercises ordering across batches: many sessions, a subagent file, a copy
    of a session (its trace_id must be made unique), and a broken file (a warning, in order)."""
    build_every_format(root)
    claude = root / "claude" / "-home-ana-proj"
    for number in range(9):
        lines = claude_basic_lines()
        session = f"{number:08x}-aaaa-4bbb-8ccc-{number:012x}"
        for line in lines:
            line["sessionId"] = session
        write_jsonl(claude / f"{session}.jsonl", lines)
    subagent = [line | {"isSidechain": True, "agentId": "sub1"} for line in claude_basic_lines()]
    write_jsonl(claude / CLAUDE_SESSION / "subagents" / "agent-sub1.jsonl", subagent)
    shutil.copy(claude / f"{CLAUDE_SESSION}.jsonl", root / "claude" / "copy.jsonl")
    (claude / "00000004-broken.jsonl").write_text('{"type": "file-history-snapshot"}\n')


def read(root: Path, jobs: int) -> tuple[list[dict], list[str], int]:
    """Rows, warnings, and how many worker processes were alive while rows were coming in."""
    warnings: list[str] = []
    workers = 0
    rows = []
    with SnapshotStore() as snapshots:
        units = build_manifest([root], "auto", snapshots=snapshots, warn=warnings.append)
        for row in iter_rows(units, warn=warnings.append, jobs=jobs):
            workers = max(workers, len(multiprocessing.active_children()))
            rows.append(row)
    return rows, warnings, workers


def test_parallel_rows_order_and_warnings_equal_serial(tmp_path: Path, monkeypatch) -> None:
    build_mixed_corpus(tmp_path)
    # a corpus this small is read in one process by default; many small batches, spread over both workers
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(parallel, "BATCH_UNITS", 3)

    serial, serial_warnings, serial_workers = read(tmp_path, jobs=1)
    spread, spread_warnings, spread_workers = read(tmp_path, jobs=2)

    assert (serial_workers, spread_workers) == (0, 2)
    assert len(serial) == 23  # 12 from every format, 9 sessions, the subagent, the copy (broken: skipped)
    assert spread == serial  # every column, timestamps included, in the same order
    assert spread_warnings == serial_warnings
    assert [row["trace_id"] for row in serial if row["is_sidechain"] and row["agent"] == "claude_code"] == [
        f"claude_code:{CLAUDE_SESSION}:sub1"
    ]
    assert any("00000004-broken.jsonl: skipped" in warning for warning in serial_warnings)
    copies = [
        row["trace_id"] for row in serial if row["trace_id"].startswith(f"claude_code:{CLAUDE_SESSION}@")
    ]
    assert copies == [f"claude_code:{CLAUDE_SESSION}@claude/-home-ana-proj/{CLAUDE_SESSION}.jsonl"]


def test_unreadable_file_in_a_worker_stops_with_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    build_mixed_corpus(tmp_path)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(parallel, "BATCH_UNITS", 3)
    with SnapshotStore() as snapshots:
        units = build_manifest([tmp_path], "auto", snapshots=snapshots, warn=lambda message: None)
        gone = [unit.path for unit in units if unit.format == "claude_code"][-1]
        gone.unlink()  # vanished between the manifest and hydration
        with pytest.raises(UserError, match=f"cannot read {gone}: No such file or directory"):
            list(iter_rows(units, warn=lambda message: None, jobs=2))


def test_cli_jobs_flag_writes_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    build_mixed_corpus(tmp_path / "src")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(parallel, "BATCH_UNITS", 3)
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.jsonl"
        result = CliRunner().invoke(main, ["rollouts", str(tmp_path / "src"), "-j", jobs, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert "→ 23 rollout(s)" in result.output
        outputs[jobs] = out.read_bytes()
    assert outputs["1"] == outputs["2"]

    zero = CliRunner().invoke(main, ["rollouts", str(tmp_path / "src"), "--jobs", "0"])
    assert zero.exit_code == 2 and "--jobs" in zero.output and "Traceback" not in zero.output


@pytest.mark.parametrize(("cpus", "jobs"), [(1, 1), (2, 1), (3, 2), (16, 2)])
def test_default_jobs_leaves_a_cpu_to_the_writer_and_is_capped(cpus: int, jobs: int, monkeypatch) -> None:
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert parallel.default_jobs() == jobs
