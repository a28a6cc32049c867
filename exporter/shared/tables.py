"""Every table agentcap prints (ls, inspect --print, scan, the export summary) follows one rule.

- On a terminal a table fits the window: identifiers (run ids, request ids, file names, URLs,
  times) are never wrapped, free text wraps inside its cell, previews are cut with an ellipsis.
- Anywhere else (a pipe, a file, `$(…)`, a CI log) there is no window to fit: the console has no
  width limit, so every cell is printed whole on its row, without colour, ready for grep and awk.
  rich would otherwise lay out for $COLUMNS or 80 columns and wrap or cut the ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

ColumnKind = Literal["id", "text", "preview", "number"]
NO_WIDTH_LIMIT = 1_000_000


def output_console(*, stderr: bool = False) -> Console:
    """The console for stdout (or stderr): the terminal's width on a terminal, else unlimited."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=NO_WIDTH_LIMIT)


def new_table(columns: Iterable[tuple[str, ColumnKind]], **options: Any) -> Table:
    """A table whose columns follow the rule above; `options` go to `rich.table.Table`."""
    table = Table(**options)
    for header, kind in columns:
        table.add_column(
            header,
            justify="right" if kind == "number" else "left",
            no_wrap=kind != "text",
            overflow="ellipsis" if kind == "preview" else "fold",
        )
    return table


def human_bytes(count: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB")
    unit = 0
    while count >= 1024 and unit < len(units) - 1:
        count /= 1024
        unit += 1
    return f"{count:.0f} B" if unit == 0 else f"{count:.1f} {units[unit]}"
