"""Fleet scale against a real S3 server (moto, on 127.0.0.1): sync runs up, then read them from s3://.

One server per module. Runs: two finished ones (one with a trace and a canary secret in the
trace-less one's prompt) and one still recording (run.json `running`, a half-written last line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run
from s3_server import make_bucket, moto_server, s3_env
from scan_fakes import canary_secrets

from exporter.cli import main
from exporter.scan.report import REPORT_FILE
from exporter.shared.tables import human_bytes

AGENTCAP = Path(sys.executable).parent / "agentcap"
SECRETS = canary_secrets()
BUCKET = "fleet-runs"
OFFLINE_SCAN = ["--scanner", "kingfisher", "--no-verify"]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url, pytest.MonkeyPatch.context() as patch:
        for name, value in s3_env(url).items():
            patch.setenv(name, value)
        make_bucket(url, BUCKET)
        yield url


@pytest.fixture(autouse=True)
def fresh_s3_clients() -> Iterator[None]:
    """fsspec caches filesystems by their options, not by env: tests that change endpoints need new ones."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def write_runs(runs: Path) -> dict[str, Path]:
    finished = write_run(
        runs,
        "pi-20261121T080000-aaaaaa",
        [make_record(seq=seq, reply=f"reply {seq} ünïcode") for seq in range(1, 6)],
        agent="pi",
        traces={"2026-11-21_session.jsonl": '{"type":"session","id":"s1"}\n{"type":"message"}\n'},
    )
    secret = write_run(
        runs,
        "demo-20261121T081500-bbbbbb",
        [make_record(seq=1, messages=[{"role": "user", "content": f"GITHUB_TOKEN={SECRETS['github']} ok?"}])],
    )
    live = write_run(runs, "demo-20261121T090000-cccccc", [make_record(seq=seq) for seq in range(1, 4)])
    info = json.loads((live / "run.json").read_text())
    (live / "run.json").write_text(json.dumps(info | {"status": "running", "ended_at": None}))
    with (live / "captures.jsonl").open("ab") as handle:
        handle.write(b'{"schema":"agentcap.capture/1","seq":4,"request_id":"half-writ')  # mid-write
    (runs / ".fingerprint-key").write_text("f" * 64)
    return {"finished": finished, "secret": secret, "live": live}


def agentcap(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3")


def remote_files(prefix: str) -> dict[str, bytes]:
    fs = s3()
    fs.invalidate_cache()
    return {name.removeprefix(prefix + "/"): fs.cat(name) for name in fs.find(prefix)}


def test_sync_uploads_finished_runs_whole_and_live_runs_as_complete_lines(
    tmp_path: Path, endpoint: str
) -> None:
    runs = tmp_path / "runs"
    made = write_runs(runs)
    url = f"s3://{BUCKET}/sync-basic"
    first = agentcap("sync", str(runs), url)
    assert first.exit_code == 0, first.output
    uploaded = remote_files(f"{BUCKET}/sync-basic")
    local = {
        path.relative_to(runs).as_posix(): path.read_bytes()
        for path in runs.rglob("*")
        if path.is_file() and not path.relative_to(runs).as_posix().startswith(".")
    }
    live_captures = f"{made['live'].name}/captures.jsonl"
    # Everything but the live run's captures is byte for byte; those end at their last complete line.
    assert {name: data for name, data in uploaded.items() if name != live_captures} == {
        name: data for name, data in local.items() if name != live_captures
    }
    complete = local[live_captures].rsplit(b"\n", 1)[0] + b"\n"
    assert uploaded[live_captures] == complete and b"half-writ" not in uploaded[live_captures]
    assert not any(".fingerprint-key" in name or name.startswith(".") for name in uploaded)
    # Unchanged: nothing goes up again. One more complete line: only that file (and nothing else).
    again = agentcap("sync", str(runs), url)
    assert "0 file(s) uploaded" in again.output and "uploaded " not in again.output.replace(
        "0 file(s) uploaded", ""
    )
    with (made["live"] / "captures.jsonl").open("ab") as handle:
        handle.write(b'ten"}\n')  # the half line is now complete (malformed, but a whole line)
    grown = agentcap("sync", str(runs), url)
    size = len(local[live_captures]) + len(b'ten"}\n')
    assert [line for line in grown.output.splitlines() if line.startswith("uploaded ")] == [
        f"uploaded {live_captures} ({human_bytes(size)})"
    ]


def test_a_killed_sync_resumes_with_what_it_had_not_uploaded(tmp_path: Path, endpoint: str) -> None:
    runs = tmp_path / "runs"
    for number in range(8):
        write_run(
            runs,
            f"demo-20261121T08{number:02d}00-{number:06x}",
            [make_record(seq=seq, reply="x" * 20_000) for seq in range(1, 40)],
        )
    url = f"s3://{BUCKET}/sync-killed"
    sync = subprocess.Popen(
        [str(AGENTCAP), "sync", str(runs), url], stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert sync.stderr is not None
    first_line = sync.stderr.readline()
    sync.send_signal(signal.SIGKILL)  # mid-sync: right after its first file landed
    sync.wait()
    assert first_line.startswith("uploaded "), first_line
    before = set(remote_files(f"{BUCKET}/sync-killed"))
    total = {path.relative_to(runs).as_posix() for path in runs.rglob("*") if path.is_file()}
    total = {name for name in total if not name.startswith(".")}
    assert before and before < total  # killed midway
    resumed = agentcap("sync", str(runs), url)
    sent = {line.split()[1] for line in resumed.output.splitlines() if line.startswith("uploaded ")}
    # What the killed sync had not finished, and at most the one file in flight when it died (on the
    # server already, not yet in its record): never the files it had done.
    assert sent >= total - before and len(sent - (total - before)) <= 1
    assert set(remote_files(f"{BUCKET}/sync-killed")) == total
    assert "0 file(s) uploaded" in agentcap("sync", str(runs), url).output


@pytest.fixture(scope="module")
def synced(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("synced") / "runs"
    write_runs(runs)
    url = f"s3://{BUCKET}/fleet"
    assert agentcap("sync", str(runs), url).exit_code == 0
    return runs, url


def test_ls_reads_the_bucket_like_the_runs_dir(synced: tuple[Path, str]) -> None:
    runs, url = synced
    remote = json.loads(agentcap("ls", url, "--json").output)
    local = json.loads(agentcap("ls", str(runs), "--json").output)
    for entry in remote + local:
        entry.pop("path")
        entry.pop("size_bytes")  # the live run's half line and the scan caches are not in the bucket
    assert remote == local
    assert [entry["calls"] for entry in remote] == [1, 3, 5]  # sorted by run id: demo-…, demo-…, pi-…


def test_export_from_the_bucket_gives_the_bytes_an_export_of_the_runs_dir_gives(
    synced: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, url = synced
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")
    trace_free = ["pi-20261121T080000-aaaaaa", "demo-20261121T090000-cccccc"]  # the secret run blocks
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    local = agentcap("export", *[str(runs / run) for run in trace_free], "-o", str(local_out), *OFFLINE_SCAN)
    remote = agentcap("export", *[f"{url}/{run}" for run in trace_free], "-o", str(remote_out), *OFFLINE_SCAN)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    assert tree(remote_out) == tree(local_out)
    [parquet] = [name for name in tree(remote_out) if "agentcap-captures/data/train-demo" in name]
    table = pq.read_table(remote_out / parquet)
    assert table.column("seq").to_pylist() == [1, 2, 3]  # the live run: its complete lines only
    assert "partial" in remote.output or "snapshot" in remote.output
    assert any("pi-traces/traces/pi-20261121T080000-aaaaaa/" in name for name in tree(remote_out))


def tree(root: Path) -> dict[str, bytes]:
    """Every published file. The scan report stays out: it describes the scanned copy (the local run
    still holds its half-written line, the bucket does not), and it is never published."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and path.name != REPORT_FILE
    }


def test_scan_and_export_gate_read_the_bucket_and_block_the_secret(
    synced: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = synced
    scanned = agentcap("scan", url, *OFFLINE_SCAN, "--json")
    assert scanned.exit_code == 1
    report = json.loads(scanned.output)
    blocked = {run["run_id"] for run in report["runs"] if run["findings"]}
    assert blocked == {"demo-20261121T081500-bbbbbb"}
    assert SECRETS["github"] not in scanned.output
    out = tmp_path / "out"
    export = agentcap("export", url, "-o", str(out), *OFFLINE_SCAN)
    assert export.exit_code == 1 and "secret scan blocked the export" in export.output
    assert not (out / "local" / "agentcap-captures").exists()  # nothing published


def test_rollouts_read_captures_from_the_bucket(synced: tuple[Path, str], tmp_path: Path) -> None:
    runs, url = synced
    remote = agentcap("rollouts", "--format", "captures", url, "-o", str(tmp_path / "remote.jsonl"))
    agentcap("rollouts", "--format", "captures", str(runs), "-o", str(tmp_path / "local.jsonl"))
    assert remote.exit_code == 0, remote.output
    rows = [json.loads(line) for line in (tmp_path / "remote.jsonl").read_text().splitlines()]
    local_rows = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert rows and [row["session_id"] for row in rows] == [row["session_id"] for row in local_rows]
    assert all(row["source_path"].startswith(f"{url}/") for row in rows)
    assert [row["messages"] for row in rows] == [row["messages"] for row in local_rows]


def test_a_bucket_nobody_answers_for_is_one_line_and_nothing_is_published(
    tmp_path: Path, refused_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", refused_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    runs = tmp_path / "runs"
    write_runs(runs)
    for args in (["ls", f"s3://{BUCKET}/x"], ["export", f"s3://{BUCKET}/x", "-o", str(tmp_path / "out")]):
        result = agentcap(*args)
        assert result.exit_code == 2
        [line] = result.output.strip().splitlines()
        assert "cannot reach the storage" in line and "Traceback" not in result.output
    sync = agentcap("sync", str(runs), f"s3://{BUCKET}/x")
    assert sync.exit_code == 2 and "cannot reach the storage" in sync.output
    assert not (tmp_path / "out").exists()


def test_an_unauthorised_bucket_is_one_line_naming_where_credentials_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    write_runs(runs)
    with moto_server(authenticated=True) as locked:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", locked)
        for args in (["ls", f"s3://{BUCKET}/runs"], ["sync", str(runs), f"s3://{BUCKET}/runs"]):
            result = agentcap(*args)
            assert result.exit_code == 2
            [line] = result.output.strip().splitlines()
            assert "access denied" in line and "AWS_PROFILE" in line
            assert "test-secret-key" not in result.output


def test_a_scheme_without_its_backend_names_the_package(tmp_path: Path) -> None:
    for args in (["ls", "gs://bucket/runs"], ["export", "gs://bucket/runs", "-o", str(tmp_path / "out")]):
        result = agentcap(*args)
        assert result.exit_code == 2
        assert (
            result.output.strip()
            == "Error: gs://bucket/runs: no gs:// storage backend is installed; install gcsfs (pip install gcsfs)"
        )
    unknown = agentcap("ls", "nosuch://bucket/runs")
    assert unknown.exit_code == 2 and "unknown storage scheme nosuch://" in unknown.output
    assert not (tmp_path / "out").exists()


def test_inspect_lists_runs_and_calls_from_the_bucket(synced: tuple[Path, str]) -> None:
    runs, url = synced
    remote_runs = [json.loads(line) for line in agentcap("inspect", url, "--json").output.splitlines()]
    local_runs = [json.loads(line) for line in agentcap("inspect", str(runs), "--json").output.splitlines()]
    assert [row["run_id"] for row in remote_runs] == [row["run_id"] for row in local_runs]
    assert len(remote_runs) == 3
    run_url = f"{url}/pi-20261121T080000-aaaaaa"
    calls = [json.loads(line) for line in agentcap("inspect", run_url, "--json").output.splitlines()]
    local_calls = agentcap("inspect", str(runs / "pi-20261121T080000-aaaaaa"), "--json").output.splitlines()
    assert len(calls) == 5 and calls == [json.loads(line) for line in local_calls]
