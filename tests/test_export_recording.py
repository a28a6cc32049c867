"""Exporting a run that is still recording: a consistent snapshot, said out loud, completed later.

A run is still recording when run.json says `running` or captures.jsonl ends in a line without its
newline. The export reads the complete lines up to an offset fixed when it starts, marks the
published files as a partial snapshot (parquet footer + `.agentcap/index.json`), and a later export
replaces that partial export without `--replace`, locally and on the Hub.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run

from exporter.export.command import export_command

RUN_ID = "demo-20261121T081500-a1b2c3"
CAPTURES = "local/agentcap-captures"
APPENDED_AT_MOST = 10_000  # lines: keeps the file bounded however slow the export is


def line(record: dict[str, Any]) -> str:
    return json.dumps(record | {"run_id": RUN_ID, "agent": "demo"}, separators=(",", ":"))


def set_status(run_dir: Path, status: str) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(info | {"status": status}))


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return [make_record(seq=seq, run_id=RUN_ID) for seq in range(1, 21)]


@pytest.fixture
def recording(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    """13 complete lines, and the 14th written but for its newline (a whole JSON object), status running."""
    run_dir = write_run(tmp_path / "runs", RUN_ID, records[:13])
    set_status(run_dir, "running")
    with (run_dir / "captures.jsonl").open("a") as handle:
        handle.write(line(records[13]))
    return run_dir


def finish(run_dir: Path, records: list[dict[str, Any]]) -> None:
    """The proxy writes the 14th line's newline and six more lines, then stops cleanly."""
    with (run_dir / "captures.jsonl").open("a") as handle:
        handle.write("\n" + "".join(line(record) + "\n" for record in records[14:]))
    set_status(run_dir, "complete")


def export(run_dir: Path, output: Path, *args: str) -> Result:
    return CliRunner().invoke(export_command, [str(run_dir), "--output", str(output), "--no-scan", *args])


def published(folder: Path) -> tuple[list[str], dict[str, Any]]:
    """(request ids of every published row in seq order, the run's index entry)."""
    ids = ids_in_seq_order(pq.read_table(path) for path in (folder / "data").glob("*.parquet"))
    index = json.loads((folder / ".agentcap" / "index.json").read_text())
    return ids, index["runs"][RUN_ID]


def summary_rows(result: Result) -> int:
    row = next(line for line in result.stdout.splitlines() if CAPTURES in line)
    return int(row.split("│")[3])


def test_a_recording_run_exports_its_complete_lines_and_says_so(
    recording: Path, tmp_path: Path, records
) -> None:
    size_of_13 = len("".join(line(record) + "\n" for record in records[:13]).encode())
    result = export(recording, tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert (
        f"warning: {RUN_ID} is still recording (run.json status is running): exported a snapshot of its "
        "first 13 lines (13 calls); export it again once it has ended to publish the rest" in result.stderr
    )
    assert "agentcap export: 1 run(s), 1 still recording (partial)" in result.stdout
    ids, entry = published(tmp_path / "out" / CAPTURES)
    assert ids == [record["request_id"] for record in records[:13]]
    assert summary_rows(result) == 13
    snapshot = {"bytes": size_of_13, "lines": 13, "recording": True}
    assert entry["capture_snapshot"] == snapshot
    (parquet,) = (tmp_path / "out" / CAPTURES / "data").glob("*.parquet")
    assert json.loads(pq.read_metadata(parquet).metadata[b"capture_snapshot"]) == snapshot


def test_a_cut_last_line_alone_marks_the_run_recording(tmp_path: Path, records) -> None:
    run_dir = write_run(tmp_path / "runs", RUN_ID, records[:3])
    with (run_dir / "captures.jsonl").open("a") as handle:
        handle.write(line(records[3])[:50])
    result = export(run_dir, tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert f"warning: {RUN_ID} ends in an unfinished line" in result.stderr
    assert "cut last line" not in result.stderr  # never read: it lies past the snapshot
    ids, entry = published(tmp_path / "out" / CAPTURES)
    assert len(ids) == 3 and entry["capture_snapshot"]["recording"] is True


def test_a_later_export_replaces_the_partial_one_without_replace(
    recording: Path, tmp_path: Path, records
) -> None:
    output = tmp_path / "out"
    assert export(recording, output).exit_code == 0
    unchanged = export(recording, output)  # nothing new yet: the same snapshot stays, nothing rewritten
    assert unchanged.exit_code == 0 and "still recording" in unchanged.stderr
    assert "already in" not in unchanged.stderr
    assert len(list((output / CAPTURES / "data").glob("*.parquet"))) == 1

    finish(recording, records)
    result = export(recording, output)

    assert result.exit_code == 0, result.output
    assert "is still recording" not in result.stderr and "already in" not in result.stderr
    assert f"run {RUN_ID} was exported while still recording; replaced by this export" in result.stderr
    ids, entry = published(output / CAPTURES)
    assert ids == [record["request_id"] for record in records]  # every call once: 20 rows, no duplicates
    assert summary_rows(result) == 20
    assert entry["capture_snapshot"]["recording"] is False and entry["capture_snapshot"]["lines"] == 20

    final = export(recording, output)  # now it is the run's final export: kept, as any exported run
    assert f"run {RUN_ID} is already in" in final.stderr
    assert published(output / CAPTURES)[0] == ids


def test_on_the_hub_a_partial_push_is_completed_by_the_next_push(
    hub, recording: Path, tmp_path: Path, records
) -> None:
    push = ["--push", "tester/agent-runs"]
    first = export(recording, tmp_path / "out", *push)
    assert first.exit_code == 0, first.output
    assert "still recording" in first.stderr
    assert hub_rows(hub) == [record["request_id"] for record in records[:13]]

    finish(recording, records)
    dry = export(recording, tmp_path / "out", *push, "--dry-run")
    assert f"dry-run:   replace run {RUN_ID}: its earlier export was partial (still recording)" in dry.stderr
    second = export(recording, tmp_path / "out", *push)

    assert second.exit_code == 0, second.output
    assert "already in the repo" not in second.stderr
    assert hub_rows(hub) == [record["request_id"] for record in records]
    commits = [commit.summary for commit in hub.commits_to("tester/agent-runs-captures")]
    assert commits[-1] == f"agentcap export: update run {RUN_ID} (exported while still recording)"
    index = json.loads(hub.files("tester/agent-runs-captures")[".agentcap/index.json"])
    assert index["runs"][RUN_ID]["capture_snapshot"]["recording"] is False

    third = export(recording, tmp_path / "out", *push)
    assert f"run {RUN_ID} is already in the repo; skipped" in third.stderr
    assert len(hub.commits_to("tester/agent-runs-captures")) == len(commits)


def hub_rows(hub) -> list[str]:
    files = hub.files("tester/agent-runs-captures")
    return ids_in_seq_order(
        pq.read_table(io.BytesIO(data)) for path, data in files.items() if path.endswith(".parquet")
    )


def ids_in_seq_order(tables: Iterable[pa.Table]) -> list[str]:
    """The request ids of every row of every table, in seq order."""
    rows = [row for table in tables for row in table.select(["seq", "request_id"]).to_pylist()]
    return [row["request_id"] for row in sorted(rows, key=lambda row: row["seq"])]


def test_lines_written_during_the_export_are_left_for_the_next_one(tmp_path: Path) -> None:
    """A writer appends (each line in two writes, as a busy proxy may) the whole time the export runs:
    the export holds exactly the lines its snapshot names, and they are the file's first lines."""
    big = [make_record(seq=seq, run_id=RUN_ID, reply="x" * 20_000) for seq in range(1, 201)]
    run_dir = write_run(tmp_path / "runs", RUN_ID, big)
    set_status(run_dir, "running")
    stop = threading.Event()

    def append() -> None:
        seq = len(big)
        with (run_dir / "captures.jsonl").open("a") as handle:
            while not stop.is_set() and seq < APPENDED_AT_MOST:
                seq += 1
                text = line(make_record(seq=seq, run_id=RUN_ID, reply="y" * 5_000)) + "\n"
                handle.write(text[: len(text) // 2])
                handle.flush()
                handle.write(text[len(text) // 2 :])
                handle.flush()

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result = export(run_dir, tmp_path / "out")
    finally:
        stop.set()
        writer.join()

    assert result.exit_code == 0, result.output
    ids, entry = published(tmp_path / "out" / CAPTURES)
    snapshot = entry["capture_snapshot"]
    assert snapshot["recording"] is True and len(ids) == snapshot["lines"] >= len(big)
    assert summary_rows(result) == len(ids)
    with (run_dir / "captures.jsonl").open("rb") as handle:
        head = handle.read(snapshot["bytes"])
    assert head.endswith(b"\n") and [json.loads(text)["request_id"] for text in head.splitlines()] == ids
