"""What every format parser implements, and the unit of work passed from the manifest to hydration.

Reading is two-phase, as in DataDesigner's agent_rollout package: the manifest phase discovers
`Unit`s (a session file, or one session inside a database) without parsing them; the hydrate phase
turns one unit into zero or more `Rollout`s (a Claude session with subagents fans out).
"""

from __future__ import annotations

import gc
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from exporter.core.errors import UserError
from exporter.rollouts.rollout import Rollout
from exporter.rollouts.sqlite_source import SnapshotStore, connect_readonly, table_columns


class BrokenUnit(Exception):
    """The unit's structure is broken: it is skipped whole (never half a record), with this reason."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One thing to hydrate: a file (plus companion files), or one session inside a database."""

    format: str
    path: Path
    relative_path: str
    session_id: str | None = None
    snapshot: Path | None = None
    companions: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.path}#session={self.session_id}" if self.session_id is not None else str(self.path)


@dataclass(frozen=True, slots=True)
class Probe:
    """What auto-detection looks at: the first JSON objects of a JSONL file, or a database's tables."""

    json_lines: tuple[dict[str, Any], ...] = ()
    tables: Mapping[str, frozenset[str]] | None = None


class RolloutFormat(ABC):
    """One agent's native trace format. Adding a format = one module with a subclass + a registry line."""

    name: ClassVar[str]  # the --format value
    agent: ClassVar[str]  # prefix of trace_id, value of the `agent` column
    source_kind: ClassVar[str]  # DataDesigner's format value where it has one
    file_pattern: ClassVar[str]  # default glob for file names when walking a directory

    @abstractmethod
    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        """Where this agent keeps its sessions (may not exist), for a process with environment `env`.

        `agentcap run` passes the agent's own environment (its temporary HOME), `traces collect` ours.
        """

    @abstractmethod
    def detects(self, probe: Probe) -> bool:
        """True when a file or database with this head belongs to this format."""

    @abstractmethod
    def plan_units(
        self, root: Path, files: list[Path], snapshots: SnapshotStore, warn: Callable[[str], None]
    ) -> Iterator[Unit]:
        """Manifest phase: the units in `files` (found under `root`), without parsing them."""

    @abstractmethod
    def hydrate(self, unit: Unit) -> list[Rollout]:
        """Hydrate phase: parse one unit; raise BrokenUnit to skip it whole."""

    def hydrate_rows(self, unit: Unit) -> list[dict[str, Any]]:
        """The rows of one unit. Raises BrokenUnit (skip it whole) or UserError (unreadable file)."""
        # Parsing allocates millions of small acyclic objects; the cyclic collector would rescan them
        # over and over for nothing (reference counting frees them), costing ~20% of the parse.
        collecting = gc.isenabled()
        gc.disable()
        try:
            rollouts = self.hydrate(unit)
        except OSError as error:
            reason = error.strerror or str(error)
            raise UserError(
                f"cannot read {unit.path}: {reason}; check that it exists and is readable"
            ) from None
        except sqlite3.DatabaseError as error:
            raise BrokenUnit(f"database error ({error})") from None
        finally:
            if collecting:
                gc.enable()
        return [rollout.to_row() for rollout in rollouts]


def home_of(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def relative_to(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


class JsonlFormat(RolloutFormat):
    """A format that keeps one session per JSONL file."""

    def plan_units(
        self, root: Path, files: list[Path], snapshots: SnapshotStore, warn: Callable[[str], None]
    ) -> Iterator[Unit]:
        for path in files:
            yield Unit(self.name, path, relative_to(path, root if root.is_dir() else root.parent))


class SqliteFormat(RolloutFormat):
    """A format that keeps many sessions in one SQLite database: one unit per session.

    The database is copied once through SQLite's backup API from a read-only connection (a
    consistent snapshot even while the agent writes to it, WAL included); every unit reads that copy.
    """

    file_pattern: ClassVar[str] = "*.db"
    required_tables: ClassVar[Mapping[str, frozenset[str]]]
    # table -> WHERE clause selecting one session's rows (`:session` is bound); used by traces collect.
    session_tables: ClassVar[Mapping[str, str]]
    # Indexes added to the snapshot copy for the per-session queries.
    snapshot_indexes: ClassVar[tuple[str, ...]] = ()

    def detects(self, probe: Probe) -> bool:
        if probe.tables is None:
            return False
        return all(
            columns <= probe.tables.get(table, frozenset()) for table, columns in self.required_tables.items()
        )

    def plan_units(
        self, root: Path, files: list[Path], snapshots: SnapshotStore, warn: Callable[[str], None]
    ) -> Iterator[Unit]:
        for path in files:
            try:
                snapshot = snapshots.snapshot(path, self.snapshot_indexes)
                connection = connect_readonly(snapshot)
                try:
                    tables = {table: table_columns(connection, table) for table in self.required_tables}
                    if not self.detects(Probe(tables=tables)):
                        warn(f"{path}: skipped: not a {self.name} database (missing tables or columns)")
                        continue
                    session_ids = self.list_sessions(connection)
                finally:
                    connection.close()
            except sqlite3.DatabaseError as error:
                warn(f"{path}: skipped: cannot read the database ({error})")
                continue
            relative = relative_to(path, root if root.is_dir() else root.parent)
            for session_id in session_ids:
                yield Unit(self.name, path, relative, session_id=session_id, snapshot=snapshot)

    def hydrate(self, unit: Unit) -> list[Rollout]:
        connection = connect_readonly(unit.snapshot or unit.path)
        connection.row_factory = sqlite3.Row
        try:
            return self.hydrate_session(connection, unit)
        finally:
            connection.close()

    @staticmethod
    def session_row(connection: sqlite3.Connection, table: str, session_id: str | None) -> dict[str, Any]:
        """The session's own row; one deleted since the manifest phase makes the unit broken."""
        found = connection.execute(f"SELECT * FROM {table} WHERE id = ?", (session_id,)).fetchone()
        if found is None:
            raise BrokenUnit("session row vanished")
        return dict(found)

    @abstractmethod
    def list_sessions(self, connection: sqlite3.Connection) -> list[str]:
        """Session ids in a stable order (creation time, then id)."""

    @abstractmethod
    def hydrate_session(self, connection: sqlite3.Connection, unit: Unit) -> list[Rollout]:
        """Rebuild one session from the snapshot."""
