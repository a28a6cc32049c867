"""Collecting traces: copy an agent's native sessions that were active during a run into the run.

JSONL session files (Claude Code, Codex, pi) are copied byte for byte, keeping their path below the
agent's session root (so a Claude session keeps its `subagents/` files next to it). SQLite agents
(opencode, Hermes, goose) get one extract database per session: the same tables and schema, holding
only that session's rows, which `agentcap rollouts` (or sqlite3) opens like the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from exporter.core.errors import UserError
from exporter.core.record import TRACES_DIR, CaptureRecord
from exporter.rollouts.base import BrokenUnit, SqliteFormat, Unit, relative_to
from exporter.rollouts.hydrate import hydrate_unit
from exporter.rollouts.manifest import build_manifest
from exporter.rollouts.registry import FORMATS, get_format
from exporter.rollouts.rollout import to_utc
from exporter.rollouts.sqlite_source import SnapshotStore, connect_readonly, extract_session
from exporter.shared.paths import contained, copy_beneath, link_refusal, sanitize_name
from exporter.shared.runs import RunDir, Warn, iter_records, warn_on_stderr

NATIVE_AGENTS = tuple(name for name in FORMATS if name != "captures")
ALIASES = {
    "claude": "claude_code",
    "claude-code": "claude_code",
    "hermes_agent": "hermes",
    "pi_coding_agent": "pi",
}
# Clock skew between the proxy and the agent, and sessions opened a moment before the first call.
WINDOW_SLACK = timedelta(seconds=30)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def overlaps(self, started: datetime | None, ended: datetime | None) -> bool:
        if started is None and ended is None:
            return False
        first, last = started or ended, ended or started
        return first <= self.end + WINDOW_SLACK and last >= self.start - WINDOW_SLACK  # type: ignore[operator]


def run_window(run: RunDir) -> Window:
    """The run's time window: run.json's start/end widened by every capture's start and end."""
    instants = [t for t in (to_utc(run.info.started_at), to_utc(run.info.ended_at)) if t]
    for _, record in iter_records(run, CaptureRecord, warn=lambda message: None):
        instants += [
            t
            for t in (
                to_utc(record.captured_at),
                to_utc(record.captured_at + (record.duration_ms or 0) / 1000),
            )
            if t
        ]
    if not instants:
        raise UserError(f"{run.local}: no run.json times and no captures; cannot tell when the run happened")
    still_running = run.info.ended_at is None and run.info.status == "running"
    return Window(min(instants), datetime.now(UTC) if still_running else max(instants))


def collect_traces(
    run: RunDir,
    agent: str,
    sources: list[Path],
    *,
    window: Window | None = None,
    warn: Warn = warn_on_stderr,
) -> list[Path]:
    """Copy the agent's sessions active during the run into `run/traces/`; returns what was written."""
    fmt = get_format(agent)
    window = window or run_window(run)
    written: list[Path] = []
    with SnapshotStore() as snapshots:
        for source in sources:
            units = build_manifest([source], agent, snapshots=snapshots, warn=warn)
            root = source if source.is_dir() else source.parent
            for unit in _active_units(units, window, warn):
                if isinstance(fmt, SqliteFormat):
                    written.append(_extract(fmt, unit, run))
                else:
                    written += _copy_files(unit, root, run)
    return written


def _active_units(units: list[Unit], window: Window, warn: Callable[[str], None]) -> Iterator[Unit]:
    for unit in units:
        # A session file last written before the run began cannot have been active in it: skip the parse.
        if unit.session_id is None and _mtime(unit.path) < window.start - WINDOW_SLACK:
            continue
        try:
            rows = hydrate_unit(unit)
        except BrokenUnit as error:
            warn(f"{unit.label}: skipped: {error}")
            continue
        if any(window.overlaps(row["started_at"], row["ended_at"]) for row in rows):
            yield unit


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _copy_files(unit: Unit, root: Path, run: RunDir) -> list[Path]:
    """Byte-for-byte copies: a link among the sessions (the agent can write there) or in the run is refused."""
    copied = []
    for path in (unit.path, *unit.companions):
        source_root = root if path.is_relative_to(root) else path.parent
        target = f"{TRACES_DIR}/{relative_to(path, root)}"
        copy_beneath(
            source_root, path.relative_to(source_root).as_posix(), run.local, target, keep_times=True
        )
        copied.append(run.local / target)
    return copied


def _extract(fmt: SqliteFormat, unit: Unit, run: RunDir) -> Path:
    if unit.path.is_symlink():
        raise link_refusal(unit.path)
    contained(run.local, TRACES_DIR).mkdir(exist_ok=True)
    target = contained(
        run.local, TRACES_DIR, f"{fmt.name}-{sanitize_name(unit.session_id or '') or 'session'}.db"
    )
    source = connect_readonly(unit.snapshot or unit.path)
    try:
        extract_session(source, target, fmt.session_tables, unit.session_id or "")
    finally:
        source.close()
    return target
