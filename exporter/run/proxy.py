"""The capture proxy of one `agentcap run`: mitmdump with the packaged addon, on 127.0.0.1.

mitmdump runs in a session of its own, so a Ctrl-C in the terminal reaches `agentcap run` and not the
proxy: the proxy is stopped last, with SIGINT, so the addon finishes run.json. It writes its output
straight into `<run>/proxy.log` (a pipe through us would break, and take it down, if we died), and
it counts as started once the addon answers its control endpoint.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agentcap_addon.agentcap import CONTROL_PREFIX, DEFAULT_PATHS

from exporter.core.errors import AbortRun, UserError
from exporter.run.runner import ends_with_us
from exporter.shared.addon import addon_path

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
READY_POLL_S = 0.1
START_ATTEMPTS = 3  # a free port we picked can be taken before mitmdump binds it
TIMESTAMP = re.compile(r"^\[[\d:.]+\](?:\[[^]]*\])?\s*")
# mitmdump's own summary line; the error it summarises was printed before it.
GENERIC_FAILURE = "logged during startup"
CONTROL_TOKEN_HEADER = "X-Agentcap-Token"


def find_mitmdump() -> Path:
    """The mitmdump installed next to this Python (the venv agentcap lives in), else the one on PATH."""
    beside = Path(sys.executable).parent / "mitmdump"
    found = beside if beside.is_file() else shutil.which("mitmdump")
    if not found:
        raise UserError(
            "mitmdump not found next to this Python or on PATH; reinstall agentcap (it depends on mitmproxy)"
        )
    return Path(found)


@dataclass(frozen=True)
class ProxySettings:
    mode: str  # "reverse" or "regular"
    upstream: str  # scheme://host[:port]
    port: int  # 0: any free port
    runs_dir: Path
    run_id: str
    agent: str
    record_paths: Sequence[str]  # recorded on top of the addon's defaults
    key_handover: bytes | None  # JSON for agentcap_upstream_key_fd, or None (the upstream needs no key)
    log_path: Path


class Proxy:
    def __init__(
        self, settings: ProxySettings, env: dict[str, str], on_unexpected_exit: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.env = env
        self.on_unexpected_exit = on_unexpected_exit
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False
        # The context endpoint answers only requests carrying this: no web page can re-tag our calls.
        self.control_token = secrets.token_urlsafe(32)
        # Our own requests never go through a proxy from the environment (regular mode: through ours).
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arguments(self, key_fd: int | None) -> list[str]:
        settings = self.settings
        mode = f"reverse:{settings.upstream}" if settings.mode == "reverse" else "regular"
        options = {
            "agentcap_dir": str(settings.runs_dir),
            "agentcap_run": settings.run_id,
            "agentcap_agent": settings.agent,
        }
        args = [str(find_mitmdump()), "--mode", mode, "--listen-host", "127.0.0.1", "-p", str(self.port)]
        args += ["-s", str(addon_path())]
        for name, value in options.items():
            args += ["--set", f"{name}={value}"]
        args += ["--set", f"agentcap_control_token={self.control_token}"]
        if settings.record_paths:
            for pattern in (*DEFAULT_PATHS, *settings.record_paths):
                args += ["--set", f"agentcap_paths={pattern}"]
        if key_fd is not None:
            args += ["--set", f"agentcap_upstream_key_fd={key_fd}"]
        if settings.mode == "regular":
            # Decrypt only the upstream; other TLS passes through untouched (and never gets the key).
            parts = urlsplit(settings.upstream)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            args += ["--allow-hosts", f"^{re.escape(parts.hostname or '')}:{port}$"]
        return args

    def start(self) -> None:
        attempts = 1 if self.settings.port else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = self.settings.port or free_port()
            self._launch()
            if self._wait_until_answering():
                break
            reason = self.reason  # before stopping it: what it says then is not why it failed
            self.stop()
            if attempt == attempts or "in use" not in reason.lower():
                reason = reason or f"no answer after {START_TIMEOUT_S} s"
                raise AbortRun(f"the capture proxy did not start: {reason} (log: {self.settings.log_path})")
            self.stopping = False
        threading.Thread(target=self._watch, name="agentcap-proxy-watch", daemon=True).start()

    def _launch(self) -> None:
        read_fd = None
        if self.settings.key_handover is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, self.settings.key_handover)  # a few hundred bytes: never blocks on the pipe
            os.close(write_fd)
        if self.settings.mode == "regular":
            self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.url}))
        try:
            with self.settings.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self.arguments(read_fd),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**self.env, "PYTHONUNBUFFERED": "1"},
                    pass_fds=() if read_fd is None else (read_fd,),
                    start_new_session=True,
                    preexec_fn=ends_with_us(signal.SIGINT),  # SIGINT: the addon still finishes run.json
                )
        finally:
            if read_fd is not None:
                os.close(read_fd)

    def _wait_until_answering(self) -> bool:
        """True once the addon answers; False if mitmdump exits (or stays silent) first.

        mitmdump announces its listener before it exits over an error logged at start-up (a bad
        option, an unreadable key): only an answer from the addon itself means it is running.
        """
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                self.process.wait(READY_POLL_S)
                return False
            except subprocess.TimeoutExpired:
                pass
            try:
                self._control(None)
            except AbortRun:
                continue
            return self.exit_code is None
        return False

    def _watch(self) -> None:
        assert self.process is not None
        self.process.wait()
        if not self.stopping:
            self.on_unexpected_exit()

    @property
    def reason(self) -> str:
        """What mitmdump last said went wrong (else the last thing it said), from its log."""
        try:
            with self.settings.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                tail = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [TIMESTAMP.sub("", line.strip()) for line in tail.splitlines()]
        lines = [line for line in lines if line]
        # "SomeError: what went wrong"; not a bare exception name (the CancelledError of its own exit)
        errors = [line for line in lines if "rror" in line and ": " in line and GENERIC_FAILURE not in line]
        return (errors or lines or [""])[-1]

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def set_context(self, **fields: object) -> None:
        """Tag every following call with these fields (run, task, turn) through the addon's control endpoint."""
        self._control(fields)

    def _control(self, fields: dict[str, object] | None) -> None:
        """POST `fields` to the context endpoint, or GET it (None); AbortRun unless it answers 200."""
        request = urllib.request.Request(
            self.url + CONTROL_PREFIX + "context",
            data=None if fields is None else json.dumps(fields).encode(),
            headers={"Content-Type": "application/json", CONTROL_TOKEN_HEADER: self.control_token},
            method="GET" if fields is None else "POST",
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                response.read()
        except (urllib.error.URLError, OSError) as error:
            raise AbortRun(
                f"the capture proxy's context endpoint failed ({error}); see {self.settings.log_path}"
            ) from None

    def stop(self) -> int | None:
        """SIGINT, so the addon writes its last records and finishes run.json; a kill if it hangs."""
        self.stopping = True
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
