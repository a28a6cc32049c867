"""The storage layer on fsspec's own in-memory filesystem (memory://): listing once, streaming lines,
staging a run, and what a URL's errors look like. The S3 server tests (test_fleet_s3.py) run the
same code against a real object store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest
from factories import make_record, write_run

from exporter.shared.runs import RunDir, end_of_last_line, iter_lines, list_runs, resolve_targets, stage_run
from exporter.storage import StorageError, Url, list_url, parse_location, storage_errors
from exporter.sync.uploader import Destination, run_uploads, sync_once

AGENTCAP = Path(sys.executable).parent / "agentcap"


def upload_tree(local: Path) -> str:
    """Copy a local folder to a fresh memory:// prefix; returns its URL."""
    url = f"memory://agentcap-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    for path in local.rglob("*"):
        if path.is_file():
            fs.pipe_file(
                f"{url.removeprefix('memory://')}/{path.relative_to(local).as_posix()}", path.read_bytes()
            )
    return url


def test_lines_of_a_listed_url_are_the_lines_of_the_file(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "runs", "r1", [make_record(seq=seq, reply="é" * 5000 * seq) for seq in range(1, 6)]
    )
    with (run / "captures.jsonl").open("ab") as handle:
        handle.write(b'{"cut')
    url = upload_tree(tmp_path / "runs")
    [remote] = list_runs(list_url(Url(url)))
    [local] = list_runs(tmp_path / "runs")
    assert remote.run_id == local.run_id and remote.info == local.info and str(remote.path) == f"{url}/r1"
    assert list(iter_lines(remote.captures_path)) == list(iter_lines(local.captures_path))
    size = local.captures_path.stat().st_size
    assert end_of_last_line(remote.captures_path, size) == end_of_last_line(local.captures_path, size)
    assert list(iter_lines(remote.captures_path, up_to=100)) == list(
        iter_lines(local.captures_path, up_to=100)
    )


def test_a_staged_run_holds_what_is_published_and_reads_run_json_first(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", "r1", [make_record(seq=1)], traces={"a/b.jsonl": "{}\n"})
    (tmp_path / "runs" / "r1" / "notes.txt").write_text("not published")
    url = upload_tree(tmp_path / "runs")
    [run] = resolve_targets([f"{url}/r1"], all_runs=False, runs_dir=tmp_path)
    staged = stage_run(run, tmp_path / "stage")
    assert staged.run_id == run.run_id and isinstance(staged.path, Path)
    files = sorted(p.relative_to(staged.path).as_posix() for p in staged.path.rglob("*") if p.is_file())
    assert files == ["captures.jsonl", "run.json", "traces/a/b.jsonl"]
    assert staged.captures_path.read_bytes() == (tmp_path / "runs" / "r1" / "captures.jsonl").read_bytes()


def test_an_object_key_that_climbs_out_of_its_run_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", "r1", [make_record(seq=1)])
    url = upload_tree(tmp_path / "runs")
    fsspec.filesystem("memory").pipe_file(f"{url.removeprefix('memory://')}/r1/traces/x/../../../evil", b"x")
    [run] = resolve_targets([f"{url}/r1"], all_runs=False, runs_dir=tmp_path)
    with pytest.raises(StorageError, match="outside"):
        stage_run(run, tmp_path / "stage")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "stage" / "evil").exists()


def test_file_urls_are_local_paths_and_a_missing_prefix_is_one_line(tmp_path: Path) -> None:
    assert parse_location(f"file://{tmp_path}/runs") == tmp_path / "runs"
    assert parse_location("runs") == Path("runs")
    with pytest.raises(StorageError, match=r"memory://nowhere-at-all: nothing there"):
        list_url(Url("memory://nowhere-at-all"))


def test_storage_errors_never_show_credentials() -> None:
    with (
        pytest.raises(StorageError) as caught,
        storage_errors("s3://user:SeCr3tSeCr3tSeCr3t@bkt/runs", "listing it"),
    ):
        raise PermissionError(
            "denied for AKIAIOSFODNN7EXAMPLE signature aBcD1234aBcD1234aBcD1234 at https://h/x?X-Amz-Signature=s"
        )
    message = caught.value.message
    assert "SeCr3t" not in message and "AKIAIOSFODNN7EXAMPLE" not in message and "aBcD1234" not in message
    assert "X-Amz-Signature" not in message and message.startswith("s3://***@bkt/runs: access denied")


def test_sync_order_and_what_a_recording_run_uploads(tmp_path: Path) -> None:
    finished = write_run(tmp_path / "runs", "done", [make_record(seq=1)], traces={"t.jsonl": "{}\n"})
    live = write_run(tmp_path / "runs", "live", [make_record(seq=1)], traces={"t.jsonl": '{}\n{"half'})
    info = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps(info | {"status": "running"}))
    (live / ".agentcap-scan.json").write_text("{}")
    (live / "link.jsonl").symlink_to(tmp_path / "runs" / "done" / "captures.jsonl")
    # Ended: run.json last, once what it describes is there. Recording: run.json first.
    assert [u.relative for u in run_uploads(finished)] == [
        "done/captures.jsonl",
        "done/traces/t.jsonl",
        "done/run.json",
    ]
    uploads = run_uploads(live)
    assert [u.relative for u in uploads] == ["live/run.json", "live/captures.jsonl", "live/traces/t.jsonl"]
    assert uploads[2].size == 3  # the trace's complete line only; dot files and links never go
    destination = Destination(f"file://{tmp_path}/bucket")
    report = sync_once(tmp_path / "runs", destination)
    assert report.runs == 2 and len(report.uploaded) == 6
    assert (tmp_path / "bucket" / "live" / "traces" / "t.jsonl").read_bytes() == b"{}\n"
    assert not list((tmp_path / "bucket").rglob("*.agentcap-partial"))
    assert RunDir.load(tmp_path / "bucket" / "live").info.status == "running"


def test_watch_keeps_syncing_and_a_stopped_side_car_uploads_the_final_state(tmp_path: Path) -> None:
    live = write_run(tmp_path / "runs", "live", [make_record(seq=1)])
    info = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps(info | {"status": "running"}))
    bucket = tmp_path / "bucket"
    side_car = subprocess.Popen(
        [str(AGENTCAP), "sync", str(tmp_path / "runs"), f"file://{bucket}", "--watch", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert side_car.stderr is not None
    assert side_car.stderr.readline().startswith("uploaded live/run.json")  # recording: run.json first
    assert side_car.stderr.readline().startswith("uploaded live/captures.jsonl")
    with (live / "captures.jsonl").open("a") as handle:  # the run goes on, then ends
        handle.write(json.dumps(make_record(seq=2) | {"run_id": "live", "agent": "demo"}) + "\n")
    (live / "run.json").write_text(json.dumps(info | {"status": "complete"}))
    side_car.send_signal(signal.SIGTERM)
    rest = side_car.stderr.read()
    assert side_car.wait(timeout=60) == 0, rest
    assert rest.strip().splitlines()[-1].startswith(f"synced 1 run(s) to file://{bucket}")
    assert (bucket / "live" / "captures.jsonl").read_bytes() == (live / "captures.jsonl").read_bytes()
    assert json.loads((bucket / "live" / "run.json").read_text())["status"] == "complete"
