"""One agent invocation (a turn): a process group of its own, output to files, a timeout, Ctrl-C.

A prompted turn runs headless in a new session: stdin is /dev/null (or the prompt, for an agent
wired to read it there), stdout and stderr go to the run's sessions/ files, and Ctrl-C reaches
`agentcap run`, which stops the whole group (SIGTERM, then SIGKILL after a grace period).
Whatever the agent leaves running in its group is stopped when the turn ends. The attached session
(no prompt) shares the terminal instead: Ctrl-C goes to the agent, which decides what it means, and
`agentcap run` waits for it to exit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TERMINATE_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class TurnOutcome:
    status: str  # ok | failed | timeout | interrupted
    exit_code: int | None
    started_at: float
    ended_at: float
    error: str | None = None  # why the command could not start


def ends_with_us(signal_number: int) -> Callable[[], None] | None:
    """A preexec_fn: the child gets `signal_number` if `agentcap run` dies without stopping it.

    Children in a session of their own outlive a killed parent; this keeps a proxy or an agent from
    running on unattended (Linux; elsewhere, None).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    return lambda: libc.prctl(PR_SET_PDEATHSIG, signal_number, 0, 0, 0)


@contextmanager
def sigint_ignored() -> Iterator[None]:
    # A Python handler rather than SIG_IGN: an ignored signal would stay ignored in a child we exec.
    previous = signal.signal(signal.SIGINT, lambda _signal, _frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class AgentRunner:
    """Runs turns one at a time; `stop_current` (from another thread: the proxy died) ends the one running."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.lock = threading.Lock()
        self.current: subprocess.Popen[bytes] | None = None
        self.current_has_group = False

    def stop_current(self) -> None:
        with self.lock:
            process, has_group = self.current, self.current_has_group
        if process is not None:
            _terminate(process, has_group)

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        output: tuple[Path, Path] | None,
        timeout: float | None,
        stdin: str | None = None,
    ) -> TurnOutcome:
        """One invocation; `output` (stdout, stderr files) None means attached to the terminal; `stdin`
        (headless only) what the agent reads there."""
        started = time.time()
        try:
            process = self._spawn(argv, env, output, stdin)
        except OSError as error:
            return TurnOutcome(
                "failed", None, started, time.time(), error=f"{argv[0]}: {error.strerror or error}"
            )
        status: str | None = None
        try:
            if output is None:
                with sigint_ignored():
                    code = process.wait()
                if code in (-signal.SIGINT, 128 + signal.SIGINT):
                    status = "interrupted"
            else:
                code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            with sigint_ignored():
                if output is not None:
                    _terminate(process, own_group=True)  # a no-op for the leader once it exited
                with self.lock:
                    self.current = None
        code = process.returncode
        return TurnOutcome(status or ("ok" if code == 0 else "failed"), code, started, time.time())

    def _spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        output: tuple[Path, Path] | None,
        stdin: str | None,
    ) -> subprocess.Popen[bytes]:
        with self.lock:
            if output is None:
                process = subprocess.Popen(list(argv), cwd=self.cwd, env=dict(env))
            else:
                # A file rather than a pipe: the agent reads it at its own pace, nothing here blocks on it.
                with (
                    output[0].open("wb") as stdout,
                    output[1].open("wb") as stderr,
                    tempfile.TemporaryFile() as given,
                ):
                    given.write((stdin or "").encode())
                    given.seek(0)
                    process = subprocess.Popen(
                        list(argv),
                        cwd=self.cwd,
                        env=dict(env),
                        stdin=subprocess.DEVNULL if stdin is None else given,
                        stdout=stdout,
                        stderr=stderr,
                        start_new_session=True,
                        preexec_fn=ends_with_us(signal.SIGTERM),
                    )
            self.current, self.current_has_group = process, output is not None
        return process


def _terminate(process: subprocess.Popen[bytes], own_group: bool) -> None:
    """SIGTERM, SIGKILL after the grace period; with a group of its own, to everything in the group."""

    def send(signal_number: int) -> None:
        try:
            if own_group:
                os.killpg(process.pid, signal_number)
            elif process.poll() is None:
                process.send_signal(signal_number)
        except ProcessLookupError:
            pass

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait()
    if own_group:
        send(signal.SIGKILL)  # what the agent left running in its group
