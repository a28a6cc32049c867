"""Reading agent databases without ever writing to them: read-only URIs, backup-API snapshots, extracts."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from exporter.shared.staging import new_private_dir

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: `mode=ro`, or `immutable=1` when the WAL index cannot be opened.

    A read-only connection to a WAL database needs its `-shm` file; on read-only media or when the
    agent is gone and left none, `immutable=1` reads the file as it is instead of failing.
    """
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        connection.close()
        connection = sqlite3.connect(uri + "&immutable=1", uri=True)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


def table_columns(connection: sqlite3.Connection, table: str) -> frozenset[str]:
    return frozenset(row[1] for row in connection.execute(f'PRAGMA table_info("{table}")'))


def database_tables(connection: sqlite3.Connection) -> dict[str, frozenset[str]]:
    names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: table_columns(connection, name) for name in names}


def chain_root(connection: sqlite3.Connection, table: str, parent_column: str, session_id: str) -> str:
    """The top of a parent chain of sessions (subagents, compressions); a cycle in bad data ends it."""
    seen, current = {session_id}, session_id
    while True:
        row = connection.execute(
            f'SELECT "{parent_column}" FROM "{table}" WHERE id = ?', (current,)
        ).fetchone()
        parent = row[0] if row is not None else None
        if not isinstance(parent, str) or parent in seen:
            return current
        seen.add(parent)
        current = parent


class SnapshotStore:
    """Consistent copies of agent databases, one per database, deleted when the store closes.

    The copies hold whatever the databases hold, so they live in a private 0700 folder
    (`exporter.shared.staging`), in `parent` (an export's staging) or else the temp directory; one left
    by a killed process is removed by the next.
    """

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._directory: Path | None = None
        self._copies: dict[Path, Path] = {}

    def snapshot(self, path: Path, indexes: Sequence[str] = ()) -> Path:
        """The copy of `path`; `indexes` (CREATE INDEX statements) are added to the copy, never to the
        agent's file, so per-session queries stay linear on databases that lack them."""
        key = path.resolve()
        if key not in self._copies:
            if self._directory is None:
                self._directory = new_private_dir(self._parent or Path(tempfile.gettempdir()))
            copy = self._directory / f"{len(self._copies)}-{path.name}"
            source = connect_readonly(path)
            try:
                target = sqlite3.connect(copy)
                try:
                    source.backup(target)
                    for statement in indexes:
                        # a column this schema version lacks: skipped, detection reports the database
                        with contextlib.suppress(sqlite3.OperationalError):
                            target.execute(statement)
                    target.commit()
                finally:
                    target.close()
            finally:
                source.close()
            self._copies[key] = copy
        return self._copies[key]

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory = None
        self._copies.clear()

    def __enter__(self) -> SnapshotStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def extract_session(
    source: sqlite3.Connection, destination: Path, session_tables: Mapping[str, str], session_id: str
) -> dict[str, int]:
    """Write a new database holding only one session's rows of `session_tables`, same schema.

    Returns rows copied per table. Tables the source lacks are skipped; nothing else is copied, so
    the extract carries nothing from other sessions.
    """
    destination.unlink(missing_ok=True)
    target = sqlite3.connect(destination)
    copied: dict[str, int] = {}
    try:
        for table, where in session_tables.items():
            found = source.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if found is None:
                continue
            target.execute(found[0])
            cursor = source.execute(f'SELECT * FROM "{table}" WHERE {where}', {"session": session_id})
            width = len(cursor.description)
            rows = cursor.fetchall()
            placeholders = ", ".join("?" * width)
            target.executemany(f'INSERT INTO "{table}" VALUES ({placeholders})', rows)
            copied[table] = len(rows)
        target.commit()
    finally:
        target.close()
    return copied
