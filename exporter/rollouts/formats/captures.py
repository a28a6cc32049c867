"""Our own wire captures (`runs/<run>/captures.jsonl`, docs/capture-format.md): one rollout per (run, task).

Each LLM call re-sends the conversation so far, so the rollout of a task is the *last* call's request
messages plus that call's decoded answer (streams decoded from SSE, tool calls reassembled). Usage is
summed over every call of the task. Records are streamed; per task only the latest call is kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.core.errors import UserError
from exporter.core.record import CAPTURE_SCHEMA, CAPTURES_FILE, CaptureRecord
from exporter.core.values import as_dict, as_int, as_list, as_str, content_text
from exporter.rollouts.base import BrokenUnit, JsonlFormat, Probe, Unit
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc
from exporter.shared.runs import RunDir, default_runs_dir, iter_records
from exporter.shared.wire import decode_capture, request_messages

UNTAGGED_TASK = "-"


@dataclass
class _Task:
    """The running state of one task while its records stream past."""

    final: CaptureRecord | None = None  # the latest call that got an answer
    latest: CaptureRecord | None = None  # the latest call at all
    calls: int = 0
    failed_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    models: list[str] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None


class CapturesFormat(JsonlFormat):
    name = "captures"
    agent = "agentcap"
    source_kind = "captures"
    file_pattern = CAPTURES_FILE

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        return [default_runs_dir()]

    def detects(self, probe: Probe) -> bool:
        return bool(probe.json_lines) and probe.json_lines[0].get("schema") == CAPTURE_SCHEMA

    def hydrate(self, unit: Unit) -> list[Rollout]:
        run = RunDir.load(unit.path.parent, warn=lambda message: None)  # export says so when it picks the run
        warnings: list[str] = []
        tasks: dict[str, _Task] = {}
        try:
            for _, record in iter_records(run, CaptureRecord, strict=False, warn=warnings.append):
                _observe(tasks.setdefault(record.task_id or UNTAGGED_TASK, _Task()), record)
        except UserError as error:
            raise BrokenUnit(str(error.message)) from None
        if not tasks:
            raise BrokenUnit("no capture records")
        is_partial = _ends_cut(unit.path)
        return [
            _rollout(run, unit, task_id, task, warnings, is_partial)
            for task_id, task in sorted(tasks.items())
            if task.latest is not None
        ]


def _observe(task: _Task, record: CaptureRecord) -> None:
    task.calls += 1
    answered = not record.failed
    task.failed_calls += not answered
    if task.latest is None or record.seq >= task.latest.seq:
        task.latest = record
    if answered and (task.final is None or record.seq >= task.final.seq):
        task.final = record
    task.usage.add(provider_usage(record.usage or {}))
    model = record.served_model or record.request_model()
    if model and model not in task.models:
        task.models.append(model)
    started = record.captured_at
    ended = started + (record.duration_ms or 0.0) / 1000
    task.first_at = started if task.first_at is None else min(task.first_at, started)
    task.last_at = ended if task.last_at is None else max(task.last_at, ended)


def provider_usage(raw: dict[str, Any]) -> Usage:
    """One provider usage object → our counters (input excludes cached tokens, as Anthropic reports)."""
    if not raw:
        return Usage()
    if "prompt_tokens" in raw:  # chat completions
        cached = as_int(as_dict(raw.get("prompt_tokens_details")).get("cached_tokens"))
        prompt = as_int(raw.get("prompt_tokens"))
        return Usage(
            input_tokens=None if prompt is None else prompt - (cached or 0),
            output_tokens=as_int(raw.get("completion_tokens")),
            cache_read_tokens=cached,
            reasoning_tokens=as_int(as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")),
            total_tokens=as_int(raw.get("total_tokens")),
        )
    if "cache_read_input_tokens" in raw or "cache_creation_input_tokens" in raw or "total_tokens" not in raw:
        return Usage(  # Anthropic messages: input already excludes the cache
            input_tokens=as_int(raw.get("input_tokens")),
            output_tokens=as_int(raw.get("output_tokens")),
            cache_read_tokens=as_int(raw.get("cache_read_input_tokens")),
            cache_write_tokens=as_int(raw.get("cache_creation_input_tokens")),
        )
    cached = as_int(as_dict(raw.get("input_tokens_details")).get("cached_tokens"))  # responses
    total_input = as_int(raw.get("input_tokens"))
    return Usage(
        input_tokens=None if total_input is None else total_input - (cached or 0),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_tokens=cached,
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("reasoning_tokens")),
        total_tokens=as_int(raw.get("total_tokens")),
    )


def _rollout(
    run: RunDir, unit: Unit, task_id: str, task: _Task, warnings: list[str], is_partial: bool
) -> Rollout:
    record = task.final or task.latest
    assert record is not None  # only tasks with a call get here
    body = record.request_body()
    api = record.api
    messages = [_normalize(message) for message in request_messages(body, api)]
    decoded = decode_capture(record)
    answered_at = to_utc(record.captured_at + (record.duration_ms or 0.0) / 1000)
    model = decoded.model or record.served_model or as_str(body.get("model"))
    if task.final is not None:
        answer = _normalize(decoded.to_message())
        answer["timestamp"], answer["model"] = answered_at, model
        messages.append(answer)
    session_id = f"{run.run_id}:{task_id}"
    return Rollout(
        agent=record.agent or run.agent,
        source_kind="captures",
        source_path=str(unit.path.resolve()),
        session_id=session_id,
        trace_id=f"captures:{session_id}",
        root_session_id=run.run_id,
        model=model,
        models=task.models,
        provider=record.upstream_url,
        started_at=to_utc(task.first_at),
        ended_at=to_utc(task.last_at),
        messages=messages,
        usage=task.usage,
        is_partial=is_partial,
        parse_warnings=list(warnings) + decoded.problems,
        source_meta={
            "run_id": run.run_id,
            "task_id": None if task_id == UNTAGGED_TASK else task_id,
            "api": api,
            "calls": task.calls,
            "failed_calls": task.failed_calls,
            "final_request_id": record.request_id,
            "final_seq": record.seq,
            "finish_reason": decoded.finish_reason,
            "error": decoded.error if task.final is None else None,
        },
    )


def _normalize(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style message from the wire decoder → our fixed-key message."""
    role = as_str(message.get("role")) or "user"
    content = content_text(message.get("content"))
    calls = [
        make_tool_call(as_str(call.get("id")), as_str(function.get("name")), function.get("arguments"))
        for call in map(as_dict, as_list(message.get("tool_calls")))
        for function in [as_dict(call.get("function"))]
    ]
    return make_message(
        "system" if role == "developer" else role,
        content,
        reasoning_content=as_str(message.get("reasoning_content")),
        tool_calls=calls,
        tool_call_id=as_str(message.get("tool_call_id")),
        name=as_str(message.get("name")),
        is_meta=role == "developer",
    )


def _ends_cut(path: Path) -> bool:
    """True when the file does not end with a newline: the proxy died while writing its last line."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"
