"""Run directories: finding them (`resolve_targets`, `list_runs`) and reading their records.

A run directory is what the addon writes: `captures.jsonl` (+ `run.json`, optional `traces/`).
Every reader of `captures.jsonl` shares one line policy (`iter_lines` + `LinePolicy`): a malformed
line is skipped with a warning naming file:line (fatal with `strict`), a cut last line left by a
killed proxy is tolerated, and an unknown record schema is an error: guessing at a format we do
not know would publish wrong data.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import tempfile
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
from exporter.storage import Location, RemotePath, Url, list_url, parse_location, stage_files

RUNS_DIR_ENV = "AGENTCAP_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
UNKNOWN_AGENT = "unknown"
UNNAMED_RUN = "run"
_MAPPED_WINDOW = 32 * 1024 * 1024
_TAIL_WINDOW = 64 * 1024
SNAPSHOT_KEY = "capture_snapshot"  # where a snapshot is published: parquet footer, repo index entry

TARGET_FORMS = (
    "a directory holding runs, a run directory (with captures.jsonl), either one as a URL (s3://…), "
    "or a run id under the runs dir (--runs-dir / $AGENTCAP_RUNS_DIR)"
)

Warn = Callable[[str], None]
RunPath = Path | RemotePath  # a run directory on this machine, or under a listed URL (exporter.storage)


def warn_on_stderr(message: str) -> None:
    """The default `Warn` of library calls: one line on stderr (commands pass their own)."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class RunDir:
    """One run directory. `info` is its run.json (an empty `RunInfo` when missing or unreadable).

    `run_id` and `agent` become folder and repo names, so they are made safe where they are read
    (the addon's naming rule, `exporter.shared.paths.sanitize_name`); a link in place of the run, its
    captures.jsonl, run.json or traces/ is refused, never followed. A run under a URL (a
    `RemotePath`, exporter.storage) has no links: object stores have none.
    """

    run_id: str
    path: RunPath
    agent: str
    info: RunInfo = field(default_factory=RunInfo, compare=False, hash=False)

    @property
    def captures_path(self) -> RunPath:
        return self.path / CAPTURES_FILE

    @property
    def traces_path(self) -> RunPath:
        return self.path / TRACES_DIR

    @property
    def is_remote(self) -> bool:
        return isinstance(self.path, RemotePath)

    @property
    def local(self) -> Path:
        """The run's folder on this machine; a run under a URL is read through a copy (`stage_run`)."""
        if isinstance(self.path, RemotePath):
            raise UserError(f"{self.path}: a run under a URL is read through a local copy; this is a bug")
        return self.path

    def portable(self, source: str | Path) -> str:
        """`<run_id>/<path in the run>` for a file of this run (its name for any other): what datasets
        record as a source, so the exporting machine's directories stay private."""
        path, root = Path(source), self.local.resolve()
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        return f"{self.run_id}/{relative}"

    def trace_files(self) -> list[Path]:
        """The run's trace files: every regular file under traces/ (a link anywhere raises UnsafePath)."""
        traces = self.traces_path
        if isinstance(traces, RemotePath) or (not traces.is_symlink() and not traces.is_dir()):
            return []  # a run under a URL is staged first (`stage_run`); its copy has the files
        return regular_files(traces)

    @classmethod
    def load(cls, path: RunPath, *, warn: Warn | None = None) -> RunDir:
        warn = warn or warn_on_stderr
        if path.is_symlink():
            raise UnsafePath(
                f"{path}: a symbolic link, not read as a run (a link in the runs dir could point anywhere); "
                "pass the directory it points to if you trust it"
            )
        for name in (CAPTURES_FILE, RUN_FILE, TRACES_DIR):
            if (path / name).is_symlink():
                raise link_refusal(str(path / name))
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


def is_run_dir(path: RunPath) -> bool:
    return (path / CAPTURES_FILE).is_file() or (path / RUN_FILE).is_file()


def open_runs_dir(location: Location) -> RunPath:
    """A runs dir to read: a local path as it is, a URL listed once (see exporter.storage)."""
    return list_url(location) if isinstance(location, Url) else location


def list_runs(runs_dir: RunPath, *, warn: Warn | None = None) -> list[RunDir]:
    """Every run directly inside `runs_dir`, sorted by directory name (run ids start with a time).

    A run that cannot be read safely (a link) is left out with a warning: anyone who can write into
    the runs dir could plant one, and it must not stop the user's own runs from being listed.
    """
    warn = warn or warn_on_stderr
    if not runs_dir.is_dir():
        return []
    runs = []
    children: list[RunPath] = list(runs_dir.iterdir())
    for child in sorted(children, key=lambda child: child.name):
        if not (child.is_dir() and is_run_dir(child)):
            continue
        try:
            runs.append(RunDir.load(child, warn=warn))
        except UnsafePath as error:
            warn(str(error.message))
    return runs


def resolve_targets(targets: Sequence[str], *, all_runs: bool, runs_dir: Location) -> list[RunDir]:
    """Turn command-line targets into runs, each once, in the order given.

    A target is a directory of runs (all of them), one run directory (either one local or a URL),
    or a run id under `runs_dir` (a local path or a URL). `all_runs` adds every run in `runs_dir`.
    """
    if not targets and not all_runs:
        raise UserError(f"no runs given: pass {TARGET_FORMS}, or --all for every run in {runs_dir}")
    found: list[RunDir] = []
    if all_runs:
        runs = list_runs(open_runs_dir(runs_dir))
        if not runs:
            raise UserError(f"--all: no runs in {runs_dir}; point --runs-dir (or ${RUNS_DIR_ENV}) at them")
        found += runs
    for target in targets:
        found += _resolve_one(target, runs_dir)
    unique: dict[RunPath, RunDir] = {}
    for run in found:
        unique.setdefault(run.path.resolve(), run)
    return list(unique.values())


def _resolve_one(target: str, runs_dir: Location) -> list[RunDir]:
    location = parse_location(target)
    path = open_runs_dir(location) if isinstance(location, Url) else location
    if path.is_dir() and is_run_dir(path):
        return [RunDir.load(path)]
    if path.is_dir():
        runs = list_runs(path)
        if runs:
            return runs
        raise UserError(f"{target}: directory holds no runs; pass {TARGET_FORMS}")
    if "/" not in target:
        by_id = open_runs_dir(runs_dir) / target if isinstance(runs_dir, Url) else runs_dir / target
        if by_id.is_dir() and is_run_dir(by_id):
            return [RunDir.load(by_id)]
    raise UserError(f"{target}: no such run; pass {TARGET_FORMS} (`agentcap ls` lists the runs)")


def stage_run(run: RunDir, into: Path) -> RunDir:
    """A local copy of a run under a URL: run.json, captures.jsonl and traces/ (what is published).

    run.json is copied first: a run whose status said `running` then is taken as recording, even if
    its captures grew meanwhile (`agentcap sync` uploads run.json last once a run has ended).
    A local run is returned as it is.
    """
    remote = run.path
    if not isinstance(remote, RemotePath):
        return run
    names = [name for name in (RUN_FILE, CAPTURES_FILE) if (remote / name).is_file()]
    traces = remote / TRACES_DIR
    if traces.is_dir():
        names += [str(path.relative_to(remote)) for path in traces.rglob("*") if path.is_file()]
    local = into / (sanitize_name(remote.name) or UNNAMED_RUN)
    local.mkdir(parents=True, exist_ok=True)
    stage_files(remote, local, names)
    staged = RunDir.load(local, warn=lambda _message: None)  # names were checked when listed
    return RunDir(run_id=run.run_id, path=local, agent=run.agent, info=staged.info)


@contextlib.contextmanager
def local_copies(runs: Sequence[RunDir]) -> Iterator[list[RunDir]]:
    """The runs readable as local files: local ones as they are, those under a URL staged (then removed)."""
    if not any(run.is_remote for run in runs):
        yield list(runs)
        return
    with tempfile.TemporaryDirectory(prefix="agentcap-stage-") as scratch:
        yield [stage_run(run, Path(scratch) / str(index)) for index, run in enumerate(runs)]


def _read_run_json(run_path: RunPath) -> RunInfo:
    try:
        if isinstance(run_path, RemotePath):
            return read_run_info((run_path / RUN_FILE).read_bytes())
        with os.fdopen(open_beneath(run_path, RUN_FILE), "rb") as handle:
            return read_run_info(handle.read())
    except OSError:  # missing or unreadable: the run is still read from its records
        return RunInfo()


class _AgentProbe(msgspec.Struct):
    agent: str | None = None


def _first_record_agent(path: RunPath) -> str | None:
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


def iter_lines(path: RunPath, up_to: int | None = None) -> Iterator[Line]:
    """The non-blank lines of a JSONL file, streamed (one line in memory at a time).

    Memory-mapped: captures lines are often 100 KB+, and buffered readline spends more time
    reassembling such lines than msgspec spends parsing them. Pages already read are handed back
    as we go, so the mapping never holds more than `_MAPPED_WINDOW` of the file in memory. Only the
    part of the file that exists when reading starts is read (only its first `up_to` bytes if
    given, see `CaptureSnapshot`), so a live run can be read safely. A file under a URL is streamed
    in blocks instead (`RemotePath.iter_raw_lines`).
    """
    if isinstance(path, RemotePath):
        raw_lines = path.iter_raw_lines(up_to) if path.is_file() and up_to != 0 else iter(())
        for number, (offset, content, complete) in enumerate(raw_lines, start=1):
            content = content.rstrip(b"\r")
            if content.strip():
                yield Line(number=number, offset=offset, content=content, complete=complete)
        return
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
    end = end_of_last_line(run.captures_path, size)
    return CaptureSnapshot(bytes=end, recording=run.info.status == "running" or end < size)


def end_of_last_line(path: RunPath, size: int) -> int:
    """The offset just past the last newline in the first `size` bytes of `path` (0 if none)."""
    if size == 0:
        return 0
    if isinstance(path, RemotePath):
        return _after_last_newline(path.read_range, size)
    descriptor = open_beneath(path.parent, path.name)  # the same no-link open as every read of a run
    try:
        return _after_last_newline(lambda start, end: os.pread(descriptor, end - start, start), size)
    finally:
        os.close(descriptor)


def _after_last_newline(read: Callable[[int, int], bytes], size: int) -> int:
    end = size
    while end > 0:  # backwards, a window at a time: a line can be megabytes long
        start = max(0, end - _TAIL_WINDOW)
        newline = read(start, end).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


@dataclass
class LinePolicy:
    """What to do with a line that is not a record: the one place that decides, for every reader."""

    path: RunPath
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
