"""The journal and its writer without processes: takeover, cut lines, uncommitted frames, tallies.

The crash-and-fault suite (test_addon_faults.py) kills real processes; these tests stop a writer at
exact points instead, so each recovery path is taken every time.
"""

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from proxy_harness import load_addon_module

agentcap = load_addon_module()


def snapshot(run_id: str, seq: int, **changes: Any) -> Any:
    now = time.time()
    fields: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "seq": seq,
        "run_id": run_id,
        "task_id": None,
        "turn": None,
        "api": "chat.completions",
        "started_at": now,
        "method": "POST",
        "url": "http://127.0.0.1:1/v1/chat/completions",
        "upstream_url": "http://127.0.0.1:1",
        "http_version": "HTTP/1.1",
        "request_headers": ((b"content-type", b"application/json"),),
        "request_raw": b'{"model": "m"}',
        "response_status": 200,
        "response_headers": ((b"content-type", b"application/json"),),
        "response_raw": b'{"model": "m-1", "usage": {"total_tokens": 3}}',
        "response_streamed": False,
        "response_started_at": now,
        "ended_at": now,
        "error": None,
    }
    return agentcap.CallSnapshot(**fields | changes)


class Proxy:
    """The proxy's side of one journal, as the addon drives it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(exist_ok=True)
        self.base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        self.journal = agentcap.Journal(self.base_fd, base)
        self.seq = 0

    def open_run(self, run_id: str, **tallies: int) -> None:
        (self.base / run_id).mkdir(mode=0o700, exist_ok=True)
        assert self.journal.append(agentcap.RunTally(run_id, "tester", time.time(), **tallies))

    def calls(self, run_id: str, count: int, **changes: Any) -> list[str]:
        ids = []
        for _ in range(count):
            self.seq += 1
            call = snapshot(run_id, self.seq, **changes)
            assert self.journal.append(call)
            ids.append(call.request_id)
        return ids

    def writer(self) -> Any:
        return agentcap.RecordWriter(self.base, self.journal.name)


def lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "captures.jsonl").read_bytes().splitlines()]


def run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def test_a_writer_taking_over_neither_loses_nor_repeats(tmp_path: Path) -> None:
    proxy = Proxy(tmp_path / "runs")
    proxy.open_run("r", passthrough=2)
    written = proxy.calls("r", 3) + proxy.calls("r", 1, response_status=500)
    first = proxy.writer()
    first.catch_up()  # four lines written; its checkpoint is still where the run was registered
    assert len(lines(tmp_path / "runs" / "r")) == 4
    later = proxy.calls("r", 2)
    assert proxy.journal.append(agentcap.CloseRuns("complete"), control=True)
    proxy.writer().drain("interrupted")  # the first writer "died" without another checkpoint
    records = lines(tmp_path / "runs" / "r")
    assert [r["request_id"] for r in records] == written + later
    info = run_json(tmp_path / "runs" / "r")
    assert info["status"] == "complete"
    assert info["counts"] == {
        "recorded": 6,
        "failed": 1,
        "errors": 0,
        "http_errors": 1,
        "passthrough": 2,
        "lost": 0,
    }
    assert not (tmp_path / "runs" / ".spool" / proxy.journal.name).exists()


def test_a_line_cut_by_a_dying_writer_is_removed_and_written_again(tmp_path: Path) -> None:
    proxy = Proxy(tmp_path / "runs")
    proxy.open_run("r")
    written = proxy.calls("r", 2)
    proxy.writer().catch_up()
    captures = tmp_path / "runs" / "r" / "captures.jsonl"
    whole = captures.read_bytes()
    captures.write_bytes(whole[: len(whole) - 40])  # the second line, cut 40 bytes before its end
    assert proxy.journal.append(agentcap.CloseRuns("complete"), control=True)
    proxy.writer().drain("interrupted")
    assert captures.read_bytes() == whole  # the same two lines, byte for byte
    assert [r["request_id"] for r in lines(tmp_path / "runs" / "r")] == written
    assert run_json(tmp_path / "runs" / "r")["counts"]["recorded"] == 2


def test_a_frame_without_its_header_is_not_read(tmp_path: Path) -> None:
    proxy = Proxy(tmp_path / "runs")
    proxy.open_run("r")
    [kept] = proxy.calls("r", 1)
    journal = proxy.journal
    payload = agentcap.encode_message(snapshot("r", 2))
    os.pwrite(journal.segment_fd, payload, journal.offset + agentcap.FRAME.size)  # killed before the header
    proxy.writer().drain("interrupted")
    assert [r["request_id"] for r in lines(tmp_path / "runs" / "r")] == [kept]
    assert run_json(tmp_path / "runs" / "r")["status"] == "interrupted"


def test_the_journal_continues_across_segments(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(agentcap, "CONTROL_RESERVE", 4096)
    monkeypatch.setattr(agentcap, "SEGMENT_BYTES", 50_000)  # one 30 KB call per segment
    proxy = Proxy(tmp_path / "runs")
    proxy.open_run("r")
    big = b'{"model": "m", "pad": "' + b"x" * 30_000 + b'"}'
    written = proxy.calls("r", 12, request_raw=big)  # ~30 KB each: several segments
    assert proxy.journal.number == 12
    assert proxy.journal.append(agentcap.CloseRuns("complete"), control=True)
    proxy.writer().drain("interrupted")
    assert [r["request_id"] for r in lines(tmp_path / "runs" / "r")] == written
    assert not (tmp_path / "runs" / ".spool" / proxy.journal.name).exists()


def test_run_tallies_survive_a_takeover(tmp_path: Path) -> None:
    proxy = Proxy(tmp_path / "runs")
    proxy.open_run("quiet", passthrough=1)  # the only tally this run ever gets
    proxy.writer().catch_up()
    proxy.writer().drain("interrupted")  # the second writer starts from the first one's checkpoint
    assert run_json(tmp_path / "runs" / "quiet")["counts"]["passthrough"] == 1
