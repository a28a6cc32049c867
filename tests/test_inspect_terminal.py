"""`agentcap inspect --rid` in a real terminal (a pty of a known size), with stdout captured.

This is `rid=$(agentcap inspect --rid)`: the picker must draw on the terminal at its real size and
print only the picked request id on stdout, and keys typed in one burst must open the call they
land on.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from factories import conversation_run

AGENTCAP = Path(sys.executable).parent / "agentcap"
ROWS, COLUMNS = 41, 133  # not 24×80, Textual's fallback when it cannot see the terminal
CURSOR_MOVE = re.compile(rb"\x1b\[(\d+);1H")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
READY_TIMEOUT = 30.0
DOWN, ENTER = b"\x1b[B", b"\r"


class Terminal:
    """A pty of ROWS×COLUMNS as the controlling terminal of `agentcap inspect`, stdout piped."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
        self.process = subprocess.Popen(
            [str(AGENTCAP), "inspect", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env | {"TERM": "xterm-256color"},
            start_new_session=True,  # its own session, so the pty becomes its controlling terminal
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, wanted: bytes | None) -> None:
        """Read what the picker draws until `wanted` shows up, or (None) until it closes the terminal."""
        deadline = time.monotonic() + READY_TIMEOUT
        while wanted is None or wanted not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{wanted!r} never drawn; got {self.screen[-400:]!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the last holder of the terminal closed it
                    chunk = b""
                if not chunk and wanted is None:
                    return
                self.screen += chunk

    def drawn_width(self) -> int:
        """Characters in the first screen line drawn (the crumbs bar spans the whole width)."""
        first = self.screen.split(b"\x1b[1;1H", 1)[1].split(b"\r\n", 1)[0].decode()
        return len(ESCAPE.sub("", first))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)  # one write: the picker reads the keys in one go

    def finish(self) -> tuple[int, str]:
        # Keep reading the screen: a full pty buffer would block the picker's last redraw.
        self.read_until(None)
        stdout, _ = self.process.communicate(timeout=READY_TIMEOUT)
        os.close(self.master)
        return self.process.returncode, stdout.decode()


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, list[str]]:
    run_dir, _ = conversation_run(tmp_path / "runs")
    lines = (run_dir / "captures.jsonl").read_text().splitlines()
    return run_dir, [json.loads(line)["request_id"] for line in lines]


@pytest.mark.parametrize("downs", [1, 3])
def test_rid_with_captured_stdout_draws_at_terminal_size_and_prints_the_picked_id(
    run: tuple[Path, list[str]], downs: int
) -> None:
    run_dir, request_ids = run
    terminal = Terminal(str(run_dir), "--rid")
    terminal.read_until(b"6/6 calls")
    terminal.read_until(b"\x1b[%d;1H" % ROWS)  # the footer, drawn on the last row (it can come a write later)
    assert max(int(row) for row in CURSOR_MOVE.findall(terminal.screen)) == ROWS
    assert terminal.drawn_width() == COLUMNS
    terminal.type(DOWN * downs + ENTER)
    code, stdout = terminal.finish()
    assert (code, stdout) == (0, request_ids[downs] + "\n")


def test_without_any_terminal_the_picker_is_a_one_line_error(run: tuple[Path, list[str]]) -> None:
    run_dir, _ = run
    result = subprocess.run(
        [str(AGENTCAP), "inspect", str(run_dir), "--rid"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        start_new_session=True,  # no controlling terminal, as under cron or CI
        timeout=READY_TIMEOUT,
    )
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "Error: the picker needs a terminal and there is none (/dev/tty: No such device or address); "
        "use --print or --json, or pass a request id"
    ]
