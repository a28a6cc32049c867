"""One quick pass over a run's captures: what `agentcap ls` lists and the runs level of `inspect` shows.

Both commands count from this one summary, so they agree: calls, failed calls (by
`exporter.core.record.call_failed`), models, upstreams, providers and tasks with their first prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.core.errors import UserError
from exporter.core.names import provider_for
from exporter.core.record import MISSING, RawRecord, body_model
from exporter.core.values import first_user_prompt
from exporter.shared.runs import RunDir, Warn, iter_records


def ignore(_message: str) -> None:
    """A `Warn` that drops the message (listings say what is wrong in their own column)."""


@dataclass
class TaskInfo:
    task_id: str  # "" for calls without a task tag
    calls: int = 0
    turns: int | None = None
    prompt: str = ""  # the first user prompt of the task's first call (by seq), one line


@dataclass
class RunSummary:
    run: RunDir
    calls: int = 0
    failed: int = 0
    models: list[str] = field(default_factory=list)
    upstreams: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    tasks: list[TaskInfo] = field(default_factory=list)
    first_captured_at: float | None = None
    problem: str | None = None  # why the captures could not be read (e.g. a newer record schema)

    @property
    def tagged_tasks(self) -> list[TaskInfo]:
        return [task for task in self.tasks if task.task_id]


def summarize_run(run: RunDir, *, warn: Warn = ignore, check_schema: bool = True) -> RunSummary:
    """`check_schema=False` (the browser) counts what it can of a run with a newer record schema."""
    summary = RunSummary(run=run)
    tasks: dict[str, TaskInfo] = {}
    first_seq: dict[str, int] = {}
    groups: set[tuple[str, str]] = set()
    try:
        for _, record in iter_records(run, RawRecord, warn=warn, check_schema=check_schema):
            summary.calls += 1
            summary.failed += record.failed
            body = record.request.body if record.request else MISSING
            groups.add((body_model(body) or record.served_model or "", record.upstream_url or ""))
            task = tasks.setdefault(record.task_id or "", TaskInfo(record.task_id or ""))
            task.calls += 1
            if record.turn is not None:
                task.turns = max(task.turns or 0, record.turn)
            if task.task_id not in first_seq or record.seq < first_seq[task.task_id]:
                first_seq[task.task_id] = record.seq
                task.prompt = first_user_prompt(body)
            if summary.first_captured_at is None or record.captured_at < summary.first_captured_at:
                summary.first_captured_at = record.captured_at
    except UserError as error:
        return RunSummary(run=run, problem=error.message)
    summary.models = sorted({model for model, _ in groups if model})
    summary.upstreams = sorted({upstream for _, upstream in groups if upstream})
    summary.providers = sorted({provider_for(upstream, model) for model, upstream in groups})
    summary.tasks = sorted(tasks.values(), key=lambda task: task.task_id)
    return summary
