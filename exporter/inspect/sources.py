"""Where calls come from: a runs dir, one run, a parquet file or a Hub dataset.

Every source yields the same row types (`RunEntry`, `HubFile`, `calls.Call`), so the picker and
the scriptable output treat them alike:

    runs dir     runs  → calls → messages
    run          calls → messages
    parquet      calls → messages
    Hub dataset  files → calls → messages
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq

from exporter.captures import first_user_prompt
from exporter.inspect.calls import Call, MessageStore, label_calls
from exporter.runs import LinePolicy, RunDir, RunPath, Warn, iter_lines, iter_numbered_records, list_runs
from exporter.scan.inputs import CACHE_FILE_NAME

SCAN_REPORT_FILE = "scan-report.json"
PARQUET_BATCH_ROWS = 256


def _ignore(_message: str) -> None:
    """Default warn: the picker collects warnings itself; a TUI must not print under its own screen."""


@dataclass
class TaskInfo:
    task_id: str
    calls: int = 0
    turns: int | None = None
    prompt: str = ""


@dataclass
class RunEntry:
    """A run as the runs level lists it, from one quick pass over its captures."""

    run: RunDir
    calls: int = 0
    failed: int = 0
    models: list[str] = field(default_factory=list)
    tasks: list[TaskInfo] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


@dataclass
class HubFile:
    """A parquet file of a Hub dataset; the footer fields are None until its footer was read."""

    path: str
    size: int
    rows: int | None = None
    agent: str | None = None
    model: str | None = None
    run_id: str | None = None
    tasks: list[TaskInfo] = field(default_factory=list)
    problem: str | None = None

    @property
    def loaded(self) -> bool:
        return self.rows is not None or self.problem is not None


# ---------------------------------------------------------------- run directories


class _BodyModel(msgspec.Struct):
    model: object = None


class _MessageHead(msgspec.Struct):
    body: msgspec.Raw = msgspec.Raw()
    status_code: int | None = None


class _RecordHead(msgspec.Struct, kw_only=True):
    """What the runs level needs from a record; msgspec skips everything else without building it."""

    seq: int = 0
    task_id: str | None = None
    turn: int | None = None
    served_model: str | None = None
    error: object = None
    request: _MessageHead | None = None
    response: _MessageHead | None = None


def summarize_run(
    run: RunDir, *, findings: list[dict[str, Any]] | None = None, warn: Warn = _ignore
) -> RunEntry:
    entry = RunEntry(run=run, findings=findings or [])
    policy = LinePolicy(run.captures_path, warn=warn)
    models: set[str] = set()
    first_body: dict[str, tuple[int, msgspec.Raw]] = {}
    tasks: dict[str, TaskInfo] = {}
    for line in iter_lines(run.captures_path):
        try:
            head = msgspec.json.decode(line.content, type=_RecordHead)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            policy.malformed(line, str(error))
            continue
        entry.calls += 1
        status = head.response.status_code if head.response else None
        entry.failed += bool(head.error) or status is None or status >= 400
        body = head.request.body if head.request else msgspec.Raw()
        model = _request_model(body) or head.served_model
        if model:
            models.add(model)
        task = tasks.setdefault(head.task_id or "", TaskInfo(head.task_id or ""))
        task.calls += 1
        if head.turn is not None:
            task.turns = max(task.turns or 0, head.turn)
        if task.task_id not in first_body or head.seq < first_body[task.task_id][0]:
            first_body[task.task_id] = (head.seq, body)
    for task_id, (_, body) in first_body.items():
        tasks[task_id].prompt = first_user_prompt(body) if len(body) else ""
    entry.models = sorted(models)
    entry.tasks = sorted(tasks.values(), key=lambda task: task.task_id)
    return entry


def _request_model(body: msgspec.Raw) -> str | None:
    if not len(body):
        return None
    try:
        model = msgspec.json.decode(body, type=_BodyModel).model
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return model if isinstance(model, str) and model else None


def load_run_calls(
    run: RunDir, *, findings: list[dict[str, Any]] | None = None, warn: Warn = _ignore
) -> list[Call]:
    """Every call of a run, labelled, with the scan findings that point at its line."""
    store = MessageStore()
    by_line: dict[int, list[dict[str, Any]]] = {}
    for finding in findings or []:
        if finding.get("file") == run.captures_path.name and isinstance(finding.get("line"), int):
            by_line.setdefault(finding["line"], []).append(finding)
    calls = []
    for number, record in iter_numbered_records(run, warn=warn, check_schema=False):
        call = Call.from_record(record, store, line=number)
        call.findings = by_line.get(number, [])
        calls.append(call)
    return label_calls(calls)


def scan_findings(run: RunDir, report_paths: Sequence[RunPath]) -> list[dict[str, Any]]:
    """Findings for this run: its scan cache (what the last `agentcap scan`/export found), else the
    first readable scan report that mentions it (run dir, runs dir, `--scan-report`).

    Anything unreadable is ignored: it is an aid for reviewers, not something to fail on.
    """
    try:
        cached = json.loads((run.path / CACHE_FILE_NAME).read_text(encoding="utf-8"))
        return [f for f in cached["findings"] if isinstance(f, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for path in [run.path / SCAN_REPORT_FILE, *report_paths]:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for entry in report.get("runs") or [] if isinstance(report, dict) else []:
            if isinstance(entry, dict) and entry.get("run_id") == run.run_id:
                return [f for f in entry.get("findings") or [] if isinstance(f, dict)]
    return []


@dataclass
class RunsDirSource:
    runs_dir: RunPath
    report_paths: list[Path] = field(default_factory=list)
    warn: Warn = _ignore
    first_level = "runs"

    @property
    def title(self) -> str:
        return str(self.runs_dir)

    def entries(self) -> list[RunEntry]:
        reports = [self.runs_dir / SCAN_REPORT_FILE, *self.report_paths]
        runs = list_runs(self.runs_dir)
        return [summarize_run(run, findings=scan_findings(run, reports), warn=self.warn) for run in runs]

    def calls(self, entry: RunEntry) -> list[Call]:
        return load_run_calls(entry.run, findings=entry.findings, warn=self.warn)


@dataclass
class RunSource:
    run: RunDir
    report_paths: list[Path] = field(default_factory=list)
    warn: Warn = _ignore
    first_level = "calls"

    @property
    def title(self) -> str:
        return self.run.run_id

    def calls(self, entry: None = None) -> list[Call]:
        reports = [self.run.path.parent / SCAN_REPORT_FILE, *self.report_paths]
        return load_run_calls(self.run, findings=scan_findings(self.run, reports), warn=self.warn)


# ---------------------------------------------------------------- parquet


def read_parquet_calls(path: Path) -> list[Call]:
    store = MessageStore()
    calls = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        calls += [Call.from_parquet_row(row, store) for row in batch.to_pylist()]
    return label_calls(calls)


def tasks_from_metadata(text: bytes | str | None) -> list[TaskInfo]:
    """The `tasks` footer entry the exporter writes: [{"id", "turns", "calls", "prompt"}]."""
    try:
        tasks = json.loads(text or "[]")
    except ValueError:
        return []
    return (
        [
            TaskInfo(
                str(t.get("id") or ""), int(t.get("calls") or 0), t.get("turns"), str(t.get("prompt") or "")
            )
            for t in tasks
            if isinstance(t, dict)
        ]
        if isinstance(tasks, list)
        else []
    )


def describe_footer(file: HubFile, metadata: pq.FileMetaData) -> None:
    """Fill a file's footer fields from parquet metadata (rows and the exporter's key-value entries)."""
    values = {key.decode(errors="replace"): value for key, value in (metadata.metadata or {}).items()}
    file.rows = metadata.num_rows
    file.agent = values.get("agent", b"").decode(errors="replace") or None
    file.model = values.get("model", b"").decode(errors="replace") or None
    file.run_id = values.get("run_id", b"").decode(errors="replace") or None
    file.tasks = tasks_from_metadata(values.get("tasks"))


@dataclass
class ParquetSource:
    path: Path
    first_level = "calls"

    @property
    def title(self) -> str:
        return self.path.name

    def calls(self, entry: None = None) -> list[Call]:
        return read_parquet_calls(self.path)
