"""`agentcap traces collect`: copy an agent's native sessions that were active during a run into the run.

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

import click

from exporter.errors import UserError
from exporter.options import runs_dir_option
from exporter.paths import contained, copy_beneath, link_refusal, sanitize_name
from exporter.rollouts.base import BrokenUnit, SqliteFormat, Unit, relative_to
from exporter.rollouts.hydrate import hydrate_unit
from exporter.rollouts.manifest import build_manifest
from exporter.rollouts.record import to_utc
from exporter.rollouts.registry import FORMATS, get_format
from exporter.rollouts.sqlite_source import SnapshotStore, connect_readonly, extract_session
from exporter.runs import TRACES_DIR, RunDir, iter_records, resolve_targets

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
    instants = [t for t in (to_utc(run.info.get("started_at")), to_utc(run.info.get("ended_at"))) if t]
    for record in iter_records(run, warn=lambda message: None):
        started = record.get("captured_at")
        if isinstance(started, int | float):
            instants.append(to_utc(started))  # type: ignore[arg-type]
            duration = record.get("duration_ms")
            if isinstance(duration, int | float):
                instants.append(to_utc(started + duration / 1000))  # type: ignore[arg-type]
    if not instants:
        raise UserError(f"{run.path}: no run.json times and no captures; cannot tell when the run happened")
    still_running = run.info.get("ended_at") is None and run.info.get("status") == "running"
    return Window(min(instants), datetime.now(UTC) if still_running else max(instants))


def collect_traces(
    run: RunDir,
    agent: str,
    sources: list[Path],
    *,
    window: Window | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Copy the agent's sessions active during the run into `run/traces/`; returns what was written."""
    fmt = get_format(agent)
    window = window or run_window(run)
    written: list[Path] = []
    with SnapshotStore() as snapshots:
        for source in sources:
            units = build_manifest([source], agent, snapshots=snapshots, warn=warn or _warn)
            root = source if source.is_dir() else source.parent
            for unit in _active_units(units, window, warn or _warn):
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
        copy_beneath(source_root, path.relative_to(source_root).as_posix(), run.path, target, keep_times=True)
        copied.append(run.path / target)
    return copied


def _extract(fmt: SqliteFormat, unit: Unit, run: RunDir) -> Path:
    if unit.path.is_symlink():
        raise link_refusal(unit.path)
    contained(run.path, TRACES_DIR).mkdir(exist_ok=True)
    target = contained(
        run.path, TRACES_DIR, f"{fmt.name}-{sanitize_name(unit.session_id or '') or 'session'}.db"
    )
    source = connect_readonly(unit.snapshot or unit.path)
    try:
        extract_session(source, target, fmt.session_tables, unit.session_id or "")
    finally:
        source.close()
    return target


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group("traces")
def traces_group() -> None:
    """The agents' own session traces of a run."""


@traces_group.command("collect")
@click.argument("run")
@click.option(
    "--agent",
    required=True,
    type=click.Choice([*NATIVE_AGENTS, *ALIASES]),
    help="Whose sessions to collect.",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Session file, directory or database (default: the agent's standard location).",
)
@runs_dir_option("RUN ids")
def collect_command(run: str, agent: str, source: Path | None, runs_dir: Path) -> None:
    """Copy the agent's sessions active during RUN into RUN/traces/.

    RUN is a run directory or a run id under --runs-dir. The window comes from run.json and the
    captures' times. JSONL sessions are copied as-is; database agents get one extract per session.
    """
    agent = ALIASES.get(agent, agent)
    runs = resolve_targets([run], all_runs=False, runs_dir=runs_dir)
    if len(runs) != 1:
        raise UserError(f"{run}: holds {len(runs)} runs; pass one run directory or run id")
    if runs[0].is_remote:
        raise UserError(f"{run}: traces are collected into a run on this machine; pass its local directory")
    sources = [source] if source else [p for p in get_format(agent).default_roots() if p.exists()]
    if not sources:
        looked = ", ".join(str(p) for p in get_format(agent).default_roots())
        raise UserError(f"no {agent} sessions at the standard location ({looked}); pass --from PATH")
    window = run_window(runs[0])
    written = collect_traces(runs[0], agent, sources, window=window)
    span = f"{window.start:%Y-%m-%d %H:%M:%S} – {window.end:%H:%M:%S} UTC"
    if not written:
        click.echo(
            f"no {agent} sessions were active during {runs[0].run_id} ({span}); nothing copied", err=True
        )
        return
    click.echo(f"collected {len(written)} {agent} file(s) active {span} into {runs[0].traces_path}", err=True)
