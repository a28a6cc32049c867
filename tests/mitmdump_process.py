"""The real mitmdump as a subprocess with the addon loaded, concurrent clients, and what ended up on disk.

Used by the crash-and-fault tests: they kill processes, fill file systems and lower limits, so the proxy
must be a process of its own (the in-process ProxyHarness cannot be SIGKILLed).
"""

import asyncio
import ctypes
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from factories import CANARY_KEY
from proxy_harness import ADDON_PATH

from exporter.core.record import call_failed

MITMDUMP = Path(sys.executable).parent / "mitmdump"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mitmdump:
    """`mitmdump -s addons/agentcap.py --mode reverse:<upstream>` on a free loopback port."""

    def __init__(
        self,
        upstream_url: str,
        runs_dir: Path,
        *,
        run: str = "",
        args: Sequence[str] = (),
        nofile: int | None = None,
        fsize: int | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.upstream_url = upstream_url
        self.runs_dir = runs_dir
        self.port = free_port()
        self.command = [
            *(str(MITMDUMP), "-s", str(ADDON_PATH), "--mode", f"reverse:{upstream_url}"),
            *("--listen-host", "127.0.0.1", "-p", str(self.port), "--set", f"agentcap_dir={runs_dir}"),
            *("--set", "agentcap_agent=tester", "--set", "flow_detail=0"),
            *(["--set", f"agentcap_run={run}"] if run else []),
            *args,
        ]
        self.nofile = nofile
        self.fsize = fsize
        self.log_path = (log_dir or runs_dir.parent) / f"mitmdump-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def limits(self) -> None:
        """Runs in the child before exec: the limits apply to mitmdump and the writer it starts."""
        if sys.platform == "linux":  # PR_SET_PDEATHSIG: a test killed by its timeout leaves no proxy behind
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        if self.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize, self.fsize))

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.limits,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},  # the log is read while mitmdump runs
            )
        return self.process

    def start(self) -> "Mitmdump":
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mitmdump exited with {self.process.returncode}:\n{self.log()}")
            if "agentcap: recording" in self.log():  # logged once the addon started its writer
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)  # nothing to wait on: another process's port and log
        raise RuntimeError(f"mitmdump did not start within 30 s:\n{self.log()}")

    def run_to_exit(self, timeout: float = 60) -> int:
        """For a start that must fail: mitmdump's exit status (killed if it keeps running)."""
        process = self.spawn()
        try:
            return process.wait(timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def writer_pids(self) -> list[int]:
        assert self.process is not None
        return [child.pid for child in psutil.Process(self.process.pid).children(recursive=True)]

    def kill(self) -> None:
        """SIGKILL the proxy only: its writer process is left to finish on its own."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> int:
        """A clean stop (Ctrl-C); returns mitmdump's exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(120)

    def __enter__(self) -> "Mitmdump":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def wait_for_exit(pids: Sequence[int], timeout: float = 120) -> None:
    """Until every process in `pids` has exited (a pidfd becomes readable then, zombie or reaped)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"process {pid} still running after {timeout} s"
        finally:
            os.close(pidfd)


def kill_pid(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for_exit([pid], 30)


# ---------------------------------------------------------------- clients


def chat_request(port: int, body_bytes: int, *, stream: bool, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps(
        {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "x" * body_bytes}]}
    ).encode()
    head = {
        "host": f"127.0.0.1:{port}",
        "content-type": "application/json",
        "authorization": f"Bearer {CANARY_KEY}",
        "content-length": str(len(body)),
    } | (headers or {})
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    return f"POST /v1/chat/completions HTTP/1.1\r\n{lines}\r\n".encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One whole HTTP/1.1 response: a chunked body counts only once its terminating chunk arrived."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        return int(status_line.split()[1]), headers, await reader.readexactly(int(headers[b"content-length"]))
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    await reader.readuntil(b"\r\n")
    return int(status_line.split()[1]), headers, b"".join(parts)


@dataclass
class Load:
    """`clients` keep-alive connections, each making calls until stopped.

    `completed` holds the request id of every call whose whole response reached its client: the calls
    a crash must not lose. Connection errors (the proxy being killed) end a client's current call.
    """

    port: int
    clients: int
    body_bytes: int = 20_000
    stream: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)

    async def run(self) -> None:
        await asyncio.gather(*(self.client() for _ in range(self.clients)))

    async def client(self) -> None:
        request = chat_request(self.port, self.body_bytes, stream=self.stream, headers=self.headers)
        while not self.stopping.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)  # the proxy is down (killed on purpose): try again shortly
                continue
            try:
                while not self.stopping.is_set():
                    writer.write(request)
                    status, headers, body = await asyncio.wait_for(read_response(reader), 60)
                    complete = body.endswith(b"data: [DONE]\n\n") if self.stream else body.startswith(b"{")
                    request_id = headers.get(b"x-agentcap-request-id")
                    if status != 200 or not complete or request_id is None:
                        raise ValueError(f"unexpected answer {status}: {body[:100]!r}")
                    with self.changed:
                        self.completed.append(request_id.decode())
                        self.changed.notify_all()
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ):
                with self.changed:
                    self.failures += 1
            finally:
                writer.close()

    def start(self) -> "Load":
        self.thread.start()
        return self

    def wait_for(self, calls: int, timeout: float = 120) -> None:
        """Until at least `calls` calls have completed in total."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.completed) >= calls, timeout), (
                f"only {len(self.completed)} of {calls} calls completed in {timeout} s"
            )

    def stop(self) -> list[str]:
        self.stopping.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        return list(self.completed)


# ---------------------------------------------------------------- what is on disk


@dataclass
class RunFiles:
    records: list[dict[str, Any]]
    bad_lines: list[bytes]  # lines that are not a JSON object (corrupt, glued, or a cut last line)
    info: dict[str, Any]

    @property
    def request_ids(self) -> list[str]:
        return [record["request_id"] for record in self.records]


def read_run(run_dir: Path) -> RunFiles:
    records, bad = [], []
    captures = run_dir / "captures.jsonl"
    data = captures.read_bytes() if captures.exists() else b""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    else:
        bad.append(lines.pop())  # no newline at the end: a cut last line
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if isinstance(record, dict) and "request_id" in record:
            records.append(record)
        else:
            bad.append(line)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    return RunFiles(records, bad, info)


def assert_counts_true(run: RunFiles) -> None:
    """run.json says exactly what the file holds."""
    counts = run.info["counts"]
    assert counts["recorded"] == len(run.records), (counts, len(run.records))
    assert counts["failed"] == sum(
        call_failed(error=r["error"] is not None, status_code=(r["response"] or {}).get("status_code"))
        for r in run.records
    )
    assert counts["errors"] == sum(1 for r in run.records if r["error"] is not None)
    assert counts["http_errors"] == sum(
        1 for r in run.records if (r["response"] or {}).get("status_code", 0) >= 400
    )
    assert len(set(run.request_ids)) == len(run.records), "a record was written twice"
