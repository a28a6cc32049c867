"""The formats `agentcap rollouts` reads, by `--format` name, and per-file auto-detection.

Adding a format: write `formats/<name>.py` with a `RolloutFormat` subclass and add it to `FORMATS`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exporter.rollouts.base import Probe, RolloutFormat
from exporter.rollouts.formats.captures import CapturesFormat
from exporter.rollouts.formats.claude_code import ClaudeCodeFormat
from exporter.rollouts.formats.codex import CodexFormat
from exporter.rollouts.formats.goose import GooseFormat
from exporter.rollouts.formats.hermes import HermesFormat
from exporter.rollouts.formats.opencode import OpencodeFormat
from exporter.rollouts.formats.pi import PiFormat
from exporter.rollouts.jsonl_source import read_head_objects
from exporter.rollouts.sqlite_source import connect_readonly, database_tables, is_sqlite

AUTO = "auto"

# Detection order matters only for ambiguous heads: our own captures and the enveloped formats first.
FORMATS: dict[str, RolloutFormat] = {
    fmt.name: fmt
    for fmt in (
        CapturesFormat(),
        CodexFormat(),
        PiFormat(),
        ClaudeCodeFormat(),
        OpencodeFormat(),
        HermesFormat(),
        GooseFormat(),
    )
}
FORMAT_NAMES: tuple[str, ...] = (AUTO, *sorted(FORMATS))


def get_format(name: str) -> RolloutFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown rollout format {name!r}; known: {', '.join(FORMAT_NAMES)}") from None


def probe(path: Path) -> Probe:
    """A file's head as auto-detection sees it (never parses more than a few lines)."""
    if is_sqlite(path):
        try:
            connection = connect_readonly(path)
        except sqlite3.DatabaseError:
            return Probe(tables={})
        try:
            return Probe(tables=database_tables(connection))
        except sqlite3.DatabaseError:
            return Probe(tables={})
        finally:
            connection.close()
    return Probe(json_lines=tuple(read_head_objects(path)))


def detect(path: Path) -> RolloutFormat | None:
    """The format a file or database belongs to, or None."""
    head = probe(path)
    return next((fmt for fmt in FORMATS.values() if fmt.detects(head)), None)
