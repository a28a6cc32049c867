"""Run directories: finding them (`resolve_targets`, `list_runs`) and reading their records.

A run directory is what the addon writes: `captures.jsonl` (+ `run.json`, optional `traces/`).
Every reader of `captures.jsonl` shares one line policy (`iter_lines` + `LinePolicy`): a malformed
line is skipped with a warning naming file:line (fatal with `strict`), a cut last line left by a
killed proxy is tolerated, and an unknown record schema is an error: guessing at a format we do
not know would publish wrong data.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from exporter.core.errors import UserError
from exporter.core.record import (
    CAPTURE_SCHEMA,
    CAPTURES_FILE,
    RUN_FILE,
    TRACES_DIR,
    RecordHead,
    RunInfo,
    read_run_info,
)
from exporter.shared.paths import UnsafePath, link_refusal, open_beneath, regular_files, sanitize_name

RUNS_DIR_ENV = "AGENTCAP_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
UNKNOWN_AGENT = "unknown"
UNNAMED_RUN = "run"
_MAPPED_WINDOW = 32 * 1024 * 1024
_TAIL_WINDOW = 64 * 1024
SNAPSHOT_KEY = "capture_snapshot"  # where a snapshot is published: parquet footer, repo index entry

TARGET_FORMS = (
    "a directory holding runs, a run directory (with captures.jsonl), "
    "or a run id under the runs dir (--runs-dir / $AGENTCAP_RUNS_DIR)"
)

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    """The default `Warn` of library calls: one line on stderr (commands pass their own)."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class RunDir:
    """One run directory. `info` is its run.json (an empty `RunInfo` when missing or unreadable).

    `run_id` and `agent` become folder and repo names, so they are made safe where they are read
    (the addon's naming rule, `exporter.shared.paths.sanitize_name`); a link in place of the run, its
    captures.jsonl, run.json or traces/ is refused, never followed.
    """

    run_id: str
    path: Path
    agent: str
    info: RunInfo = field(default_factory=RunInfo, compare=False, hash=False)

    @property
    def captures_path(self) -> Path:
        return self.path / CAPTURES_FILE

    @property
    def traces_path(self) -> Path:
        return self.path / TRACES_DIR

    def portable(self, source: str | Path) -> str:
        """`<run_id>/<path in the run>` for a file of this run (its name for any other): what datasets
        record as a source, so the exporting machine's directories stay private."""
        path, root = Path(source), self.path.resolve()
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        return f"{self.run_id}/{relative}"

    def trace_files(self) -> list[Path]:
        """The run's trace files: every regular file under traces/ (a link anywhere raises UnsafePath)."""
        if not self.traces_path.is_symlink() and not self.traces_path.is_dir():
            return []
        return regular_files(self.traces_path)

    @classmethod
    def load(cls, path: Path, *, warn: Warn | None = None) -> RunDir:
        warn = warn or warn_on_stderr
        if path.is_symlink():
            raise UnsafePath(
                f"{path}: a symbolic link, not read as a run (a link in the runs dir could point anywhere); "
                "pass the directory it points to if you trust it"
            )
        for name in (CAPTURES_FILE, RUN_FILE, TRACES_DIR):
            if (path / name).is_symlink():
                raise link_refusal(path / name)
        info = _read_run_json(path)
        recorded = None if info.agent else _first_record_agent(path / CAPTURES_FILE)
        agent = (
            _safe_name(info.agent, f"{path / RUN_FILE}: run.json agent", UNKNOWN_AGENT, warn)
            if info.agent
            else _safe_name(recorded, f"{path / CAPTURES_FILE}: agent", UNKNOWN_AGENT, warn)
            if recorded
            else UNKNOWN_AGENT
        )
        run_id = (
            _safe_name(info.run_id, f"{path / RUN_FILE}: run.json run_id", UNNAMED_RUN, warn)
            if info.run_id
            else _safe_name(path.name, f"{path}: run directory name", UNNAMED_RUN, warn)
        )
        return cls(run_id=run_id, path=path, agent=agent, info=info)


def _safe_name(value: object, what: str, fallback: str, warn: Warn) -> str:
    text = str(value)
    safe = sanitize_name(text) or fallback
    if safe != text:
        warn(f"{what} {text!r} is not a safe name; using {safe!r}")
    return safe


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def is_run_dir(path: Path) -> bool:
    return (path / CAPTURES_FILE).is_file() or (path / RUN_FILE).is_file()


def list_runs(runs_dir: Path, *, warn: Warn | None = None) -> list[RunDir]:
    """Every run directly inside `runs_dir`, sorted by directory name (run ids start with a time).

    A run that cannot be read safely (a link) is left out with a warning: anyone who can write into
    the runs dir could plant one, and it must not stop the user's own runs from being listed.
    """
    warn = warn or warn_on_stderr
    if not runs_dir.is_dir():
        return []
    runs = []
    for child in sorted(runs_dir.iterdir()):
        if not (child.is_dir() and is_run_dir(child)):
            continue
        try:
            runs.append(RunDir.load(child, warn=warn))
        except UnsafePath as error:
            warn(str(error.message))
    return runs


def resolve_targets(targets: Sequence[str], *, all_runs: bool, runs_dir: Path) -> list[RunDir]:
    """Turn command-line targets into runs, each once, in the order given.

    A target is a directory of runs (all of them), one run directory, or a run id under `runs_dir`.
    `all_runs` adds every run in `runs_dir`.
    """
    if not targets and not all_runs:
        raise UserError(f"no runs given: pass {TARGET_FORMS}, or --all for every run in {runs_dir}")
    found: list[RunDir] = []
    if all_runs:
        runs = list_runs(runs_dir)
        if not runs:
            raise UserError(f"--all: no runs in {runs_dir}; point --runs-dir (or ${RUNS_DIR_ENV}) at them")
        found += runs
    for target in targets:
        found += _resolve_one(target, runs_dir)
    unique: dict[Path, RunDir] = {}
    for run in found:
        unique.setdefault(run.path.resolve(), run)
    return list(unique.values())


def _resolve_one(target: str, runs_dir: Path) -> list[RunDir]:
    path = Path(target)
    if path.is_dir() and is_run_dir(path):
        return [RunDir.load(path)]
    if path.is_dir():
        runs = list_runs(path)
        if runs:
            return runs
        raise UserError(f"{target}: directory holds no runs; pass {TARGET_FORMS}")
    by_id = runs_dir / target
    if "/" not in target and by_id.is_dir() and is_run_dir(by_id):
        return [RunDir.load(by_id)]
    raise UserError(f"{target}: no such run; pass {TARGET_FORMS} (`agentcap ls` lists the runs)")


def _read_run_json(run_path: Path) -> RunInfo:
    try:
        descriptor = open_beneath(run_path, RUN_FILE)
    except OSError:  # missing or unreadable: the run is still read from its records
        return RunInfo()
    try:
        with os.fdopen(descriptor, "rb") as handle:
            return read_run_info(handle.read())
    except OSError:
        return RunInfo()


class _AgentProbe(msgspec.Struct):
    agent: str | None = None


def _first_record_agent(path: Path) -> str | None:
    for line in iter_lines(path):
        try:
            return msgspec.json.decode(line.content, type=_AgentProbe).agent
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return None


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number, for messages
    offset: int  # byte offset of the line start, for re-reading it later with os.pread
    content: bytes  # without the trailing newline
    complete: bool  # False only for a last line without newline: possibly cut by a killed proxy


def iter_lines(path: Path, up_to: int | None = None) -> Iterator[Line]:
    """The non-blank lines of a JSONL file, streamed (one line in memory at a time).

    Memory-mapped: captures lines are often 100 KB+, and buffered readline spends more time
    reassembling such lines than msgspec spends parsing them. Pages already read are handed back
    as we go, so the mapping never holds more than `_MAPPED_WINDOW` of the file in memory. Only the
    part of the file that exists when reading starts is read (only its first `up_to` bytes if
    given, see `CaptureSnapshot`), so a live run can be read safely.
    """
    if not path.is_file() or path.stat().st_size == 0 or up_to == 0:
        return
    with (
        os.fdopen(open_beneath(path.parent, path.name), "rb") as handle,
        mmap.mmap(handle.fileno(), up_to or 0, access=mmap.ACCESS_READ) as mapped,
    ):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
        size, offset, number, released = len(mapped), 0, 0, 0
        while offset < size:
            if offset - released >= _MAPPED_WINDOW:
                page_start = offset - offset % mmap.PAGESIZE
                mapped.madvise(mmap.MADV_DONTNEED, released, page_start - released)
                released = page_start
            number += 1
            end = mapped.find(b"\n", offset)
            complete = end >= 0
            end = end if complete else size
            content = mapped[offset:end].rstrip(b"\r")
            if content.strip():
                yield Line(number=number, offset=offset, content=content, complete=complete)
            offset = end + 1


@dataclass(frozen=True)
class CaptureSnapshot:
    """What an export reads of a run's captures.jsonl: its complete lines when the export started.

    The offset is fixed once, so both passes of the export (and its counts) see the same lines
    however fast the proxy appends. It is published with the files (parquet footer and repo index,
    as `as_json()`), so a later export knows a partial export when it sees one.
    """

    bytes: int  # the file is read up to here: just past its last newline when the export started
    recording: bool  # run.json said `running`, or a line was still being written past `bytes`
    lines: int = 0  # lines in those bytes (filled in once they are read)

    def as_json(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "lines": self.lines, "recording": self.recording}

    @classmethod
    def from_json(cls, value: object) -> CaptureSnapshot | None:
        """The snapshot as published, or None for anything else (files of older exports have none)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                bytes=int(value["bytes"]), recording=value["recording"] is True, lines=int(value["lines"])
            )
        except (TypeError, KeyError, ValueError):
            return None


def take_snapshot(run: RunDir) -> CaptureSnapshot:
    """Fix the part of `run`'s captures.jsonl an export reads: up to the last newline, now."""
    size = run.captures_path.stat().st_size if run.captures_path.is_file() else 0
    end = _end_of_last_line(run.captures_path, size)
    return CaptureSnapshot(bytes=end, recording=run.info.status == "running" or end < size)


def _end_of_last_line(path: Path, size: int) -> int:
    """The offset just past the last newline in the first `size` bytes of `path` (0 if none)."""
    if size == 0:
        return 0
    descriptor = open_beneath(path.parent, path.name)  # the same no-link open as every read of a run
    try:
        end = size
        while end > 0:  # backwards, a window at a time: a line can be megabytes long
            start = max(0, end - _TAIL_WINDOW)
            newline = os.pread(descriptor, end - start, start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0
    finally:
        os.close(descriptor)


@dataclass
class LinePolicy:
    """What to do with a line that is not a record: the one place that decides, for every reader."""

    path: Path
    strict: bool = False
    warn: Warn = warn_on_stderr
    skipped: int = 0

    def malformed(self, line: Line, reason: str) -> None:
        where = f"{self.path}:{line.number}"
        self.skipped += 1
        if not line.complete:
            # Expected after a SIGKILL: the proxy was writing this line when it died.
            self.warn(f"{where}: ignoring the cut last line (the proxy was stopped mid-write)")
            return
        if self.strict:
            raise UserError(f"{where}: malformed record ({reason}); fix or delete the line, or drop --strict")
        self.warn(f"{where}: skipping malformed record ({reason})")

    def check_schema(self, line: Line, schema: object) -> None:
        if schema != CAPTURE_SCHEMA:
            raise UserError(
                f"{self.path}:{line.number}: unknown record schema {schema!r} (this agentcap reads "
                f"{CAPTURE_SCHEMA}); upgrade agentcap to export this run"
            )

    def decode[R: RecordHead](self, line: Line, kind: type[R], *, check_schema: bool = True) -> R | None:
        """The line as `kind` (a view of `exporter.core.record`), or None after reporting it.

        An unknown schema raises (unless `check_schema` is off: viewers show what they can of newer runs).
        """
        try:
            record = msgspec.json.decode(line.content, type=kind)
        except msgspec.ValidationError as error:
            generic = msgspec.json.decode(line.content)
            if check_schema and isinstance(generic, dict) and "schema" in generic:
                self.check_schema(line, generic["schema"])
            self.malformed(line, str(error))
            return None
        except msgspec.DecodeError as error:
            self.malformed(line, str(error))
            return None
        if check_schema:
            self.check_schema(line, record.schema)
        return record


def iter_records[R: RecordHead](
    run: RunDir,
    kind: type[R],
    *,
    strict: bool = False,
    warn: Warn = warn_on_stderr,
    check_schema: bool = True,
) -> Iterator[tuple[Line, R]]:
    """The run's records decoded as `kind`, with their lines, in file (completion) order, streamed."""
    policy = LinePolicy(run.captures_path, strict=strict, warn=warn)
    for line in iter_lines(run.captures_path):
        record = policy.decode(line, kind, check_schema=check_schema)
        if record is not None:
            yield line, record
