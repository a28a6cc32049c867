"""The terminal the picker draws on when stdout is not one (`rid=$(agentcap inspect --rid)`).

Textual draws on stderr, reads stdin and takes its size from stdout: with stdout captured, that
size is the 80×24 fallback, and with stderr redirected too nothing is seen at all. Like fzf, the
picker then talks to the controlling terminal, /dev/tty, and takes its size from there.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from textual.app import App
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from exporter.core.errors import UserError

CONTROLLING_TERMINAL = "/dev/tty"


class ControllingTerminalDriver(LinuxDriver):
    """Textual's POSIX driver, with /dev/tty for output, input and size."""

    def __init__(self, app: App[Any], **options: Any) -> None:
        super().__init__(app, **options)
        self._terminal = os.open(CONTROLLING_TERMINAL, os.O_RDWR | os.O_NOCTTY)
        self._file = open(self._terminal, "w", encoding="utf-8", closefd=False)  # noqa: SIM115  # closed in close()
        self.fileno = self._terminal
        self.input_tty = True

    def _get_terminal_size(self) -> tuple[int, int]:
        size = os.get_terminal_size(self._terminal)
        return size.columns, size.lines

    def close(self) -> None:
        super().close()
        if self._file is not None:
            self._file.close()
        os.close(self._terminal)


def picker_driver() -> type[Driver] | None:
    """The driver class for the picker: None (Textual's own) when stdout is a terminal."""
    if sys.stdout.isatty() or os.name != "posix":
        return None
    try:
        os.close(os.open(CONTROLLING_TERMINAL, os.O_RDWR | os.O_NOCTTY))
    except OSError as error:
        raise UserError(
            f"the picker needs a terminal and there is none ({CONTROLLING_TERMINAL}: {error.strerror}); "
            "use --print or --json, or pass a request id"
        ) from error
    return ControllingTerminalDriver
