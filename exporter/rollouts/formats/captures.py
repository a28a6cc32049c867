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

from exporter.errors import UserError
from exporter.rollouts.base import BrokenUnit, JsonlFormat, Probe, Unit
from exporter.rollouts.record import (
    Rollout,
    Usage,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    join_text,
    make_message,
    make_tool_call,
    to_json,
    to_utc,
)
from exporter.runs import CAPTURES_FILE, RunDir, default_runs_dir, iter_records
from exporter.schema import CAPTURE_SCHEMA_VERSION
from exporter.wire import decode_record, request_messages

UNTAGGED_TASK = "-"


@dataclass
class _Task:
    """The running state of one task while its records stream past."""

    final: dict[str, Any] | None = None  # the latest call that got an answer
    latest: dict[str, Any] | None = None  # the latest call at all
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
        return bool(probe.json_lines) and probe.json_lines[0].get("schema") == CAPTURE_SCHEMA_VERSION

    def hydrate(self, unit: Unit) -> list[Rollout]:
        run = RunDir.load(unit.path.parent, warn=lambda message: None)  # export says so when it picks the run
        warnings: list[str] = []
        tasks: dict[str, _Task] = {}
        try:
            for record in iter_records(run, strict=False, warn=warnings.append):
                _observe(tasks.setdefault(as_str(record.get("task_id")) or UNTAGGED_TASK, _Task()), record)
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


def _observe(task: _Task, record: dict[str, Any]) -> None:
    task.calls += 1
    seq = as_int(record.get("seq")) or 0
    response = as_dict(record.get("response"))
    answered = not record.get("error") and 200 <= (as_int(response.get("status_code")) or 0) < 300
    task.failed_calls += not answered
    if task.latest is None or seq >= (as_int(task.latest.get("seq")) or 0):
        task.latest = record
    if answered and (task.final is None or seq >= (as_int(task.final.get("seq")) or 0)):
        task.final = record
    task.usage.add(provider_usage(as_dict(record.get("usage"))))
    model = as_str(record.get("served_model")) or as_str(
        as_dict(as_dict(record.get("request")).get("body")).get("model")
    )
    if model and model not in task.models:
        task.models.append(model)
    started = as_float(record.get("captured_at"))
    if started is not None:
        ended = started + (as_float(record.get("duration_ms")) or 0.0) / 1000
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
    record = task.final or task.latest or {}
    body = as_dict(as_dict(record.get("request")).get("body"))
    api = as_str(record.get("api"))
    messages = [_normalize(message) for message in request_messages(body, api)]
    decoded = decode_record(record)
    captured_at = as_float(record.get("captured_at"))
    duration = (as_float(record.get("duration_ms")) or 0.0) / 1000
    answered_at = None if captured_at is None else to_utc(captured_at + duration)
    model = decoded.model or as_str(record.get("served_model")) or as_str(body.get("model"))
    if task.final is not None:
        answer = _normalize(decoded.to_message())
        answer["timestamp"], answer["model"] = answered_at, model
        messages.append(answer)
    session_id = f"{run.run_id}:{task_id}"
    return Rollout(
        agent=as_str(record.get("agent")) or run.agent,
        source_kind="captures",
        source_path=str(unit.path.resolve()),
        session_id=session_id,
        trace_id=f"captures:{session_id}",
        root_session_id=run.run_id,
        model=model,
        models=task.models,
        provider=as_str(record.get("upstream_url")),
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
            "final_request_id": record.get("request_id"),
            "final_seq": record.get("seq"),
            "finish_reason": decoded.finish_reason,
            "error": decoded.error if task.final is None else None,
        },
    )


def _normalize(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style message from the wire decoder → our fixed-key message."""
    role = as_str(message.get("role")) or "user"
    content = message.get("content")
    if not isinstance(content, str):
        content = _parts_text(content)
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


def _parts_text(content: Any) -> str:
    if content is None:
        return ""
    parts = []
    for part in as_list(content) if isinstance(content, list) else [content]:
        part = as_dict(part)
        kind = part.get("type")
        if isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind in ("image_url", "image", "input_image"):
            parts.append("[image]")
        elif part:
            parts.append(to_json(part))
    return join_text(parts)


def _ends_cut(path: Path) -> bool:
    """True when the file does not end with a newline: the proxy died while writing its last line."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"
