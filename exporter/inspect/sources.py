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

import pyarrow.parquet as pq

from exporter.core.record import CaptureRecord
from exporter.inspect.calls import Call, MessageStore, label_calls
from exporter.scan.inputs import CACHE_FILE_NAME
from exporter.scan.report import REPORT_FILE
from exporter.shared.prices import env_prices
from exporter.shared.run_summary import RunSummary, TaskInfo, ignore, summarize_run
from exporter.shared.runs import RunDir, RunPath, Warn, iter_records, list_runs
from exporter.shared.totals import Totals, run_facts, totals_of

PARQUET_BATCH_ROWS = 256


@dataclass
class RunEntry:
    """A run as the runs level lists it: the shared run summary, plus the scan findings that point at it."""

    summary: RunSummary
    findings: list[dict[str, Any]] = field(default_factory=list)
    _totals: Totals | None = field(default=None, repr=False)

    def totals(self) -> Totals:
        """Tokens, cost and latency as `agentcap stats` counts them; read on first use (a second pass)."""
        if self._totals is None:
            self._totals = totals_of(run_facts(self.run, warn=ignore), env_prices())
        return self._totals

    @property
    def run(self) -> RunDir:
        return self.summary.run

    @property
    def calls(self) -> int:
        return self.summary.calls

    @property
    def failed(self) -> int:
        return self.summary.failed

    @property
    def models(self) -> list[str]:
        return self.summary.models

    @property
    def tasks(self) -> list[TaskInfo]:
        return self.summary.tasks


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


def load_run_calls(
    run: RunDir, *, findings: list[dict[str, Any]] | None = None, warn: Warn = ignore
) -> list[Call]:
    """Every call of a run, labelled, with the scan findings that point at its line."""
    store = MessageStore()
    by_line: dict[int, list[dict[str, Any]]] = {}
    for finding in findings or []:
        if finding.get("file") == run.captures_path.name and isinstance(finding.get("line"), int):
            by_line.setdefault(finding["line"], []).append(finding)
    calls = []
    for line, record in iter_records(run, CaptureRecord, warn=warn, check_schema=False):
        call = Call.from_record(record, store, line=line.number)
        call.findings = by_line.get(line.number, [])
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
    for path in [run.path / REPORT_FILE, *report_paths]:
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
    warn: Warn = ignore
    first_level = "runs"

    @property
    def title(self) -> str:
        return str(self.runs_dir)

    def entries(self) -> list[RunEntry]:
        reports = [self.runs_dir / REPORT_FILE, *self.report_paths]
        runs = list_runs(self.runs_dir)
        return [
            RunEntry(summarize_run(run, warn=self.warn, check_schema=False), scan_findings(run, reports))
            for run in runs
        ]

    def calls(self, entry: RunEntry) -> list[Call]:
        return load_run_calls(entry.run, findings=entry.findings, warn=self.warn)


@dataclass
class RunSource:
    run: RunDir
    report_paths: list[Path] = field(default_factory=list)
    warn: Warn = ignore
    first_level = "calls"

    @property
    def title(self) -> str:
        return self.run.run_id

    def calls(self, entry: None = None) -> list[Call]:
        reports = [self.run.path.parent / REPORT_FILE, *self.report_paths]
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
