"""Responses over WebSocket through the proxy, and a proxy killed with SIGKILL mid-load."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_model_server import FakeModelServer
from helpers import wait_for, websocket_turn
from proxy_harness import ADDON_PATH, ProxyHarness


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def test_responses_over_websocket_is_one_record(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        events = websocket_turn(proxy.port, {"model": "gpt-ws", "input": "hi"}, task="ws-task")
        # The record is written once the close reaches the proxy: wait for it before stopping.
        wait_for(proxy.records, what="the WebSocket call's record")
    assert events[0]["type"] == "response.created"
    [record] = proxy.records()
    assert (record["transport"], record["method"], record["api"]) == ("websocket", "GET", "responses")
    assert record["task_id"] == "ws-task"
    assert record["response"]["status_code"] == 101
    messages = record["websocket"]["messages"]
    assert messages[0]["from"] == "client" and json.loads(messages[0]["text"])["type"] == "response.create"
    assert [json.loads(m["text"]) for m in messages[1:]] == events
    assert record["websocket"]["close_code"] == 1000
    assert record["served_model"] == "gpt-ws-2026-08-07"
    assert record["usage"] == {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigkill_mid_load_leaves_only_whole_lines(upstream: FakeModelServer, tmp_path: Path) -> None:
    port = free_port()
    runs = tmp_path / "runs"
    mitmdump = Path(sys.executable).parent / "mitmdump"
    process = subprocess.Popen(
        [
            *(str(mitmdump), "-q", "-s", str(ADDON_PATH), "--mode", f"reverse:{upstream.url}"),
            *("--listen-host", "127.0.0.1", "-p", str(port), "--set", f"agentcap_dir={runs}"),
            *("--set", "agentcap_agent=killed", "--set", "agentcap_run=killed-run"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        stop = threading.Event()
        body = json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * 20000}]}
        )

        def load() -> None:
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                        sock.sendall(
                            f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
                            f"content-type: application/json\r\nconnection: close\r\n\r\n{body}".encode()
                        )
                        while sock.recv(65536):
                            pass
                except OSError:
                    time.sleep(0.01)

        workers = [threading.Thread(target=load) for _ in range(8)]
        for worker in workers:
            worker.start()
        captures = runs / "killed-run" / "captures.jsonl"
        while time.monotonic() < deadline and (not captures.exists() or captures.stat().st_size < 2_000_000):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
        for worker in workers:
            worker.join()
    finally:
        if process.poll() is None:
            process.kill()
    # The writer process outlives the proxy: it drains what it was handed, then says what happened.
    run_json = runs / "killed-run" / "run.json"
    while time.monotonic() < deadline + 20 and json.loads(run_json.read_text())["status"] != "interrupted":
        time.sleep(0.1)
    assert json.loads(run_json.read_text())["status"] == "interrupted"
    lines = captures.read_bytes().split(b"\n")
    complete, last = lines[:-1], lines[-1]
    assert len(complete) >= 20
    records = [json.loads(line) for line in complete]  # every completed line is valid JSON
    assert len({r["request_id"] for r in records}) == len(records)
    assert all(r["response"]["raw"].endswith("data: [DONE]\n\n") for r in records)
    if last:  # at most the line being written is cut
        with pytest.raises(json.JSONDecodeError):
            json.loads(last)
