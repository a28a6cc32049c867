"""The normalized rollout row shared by every format: message dicts, usage and the row (`arrow_schema.py`
has its Arrow schema; this module stays free of pyarrow so parser worker processes start small).

A rollout is one conversation (a session, or a subagent run inside one) rebuilt from an agent's native
trace. Columns follow DataDesigner's `NormalizedAgentRolloutRecord` (same names, same meaning) plus
model, usage, titles and parse diagnostics. Every key is always present (null when unknown), so every
file and every batch shares one fixed Arrow schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.core.values import arguments_json, as_int, to_json

# Claude Code writes this model name on messages it made up itself (API errors, interrupts).
SYNTHETIC_MODELS = frozenset({"<synthetic>"})

# Key order of the usage struct (arrow_schema.USAGE_TYPE; tests/test_rollouts_properties.py keeps them in step).
USAGE_KEYS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
)

# Warnings kept per rollout; a pathological file would otherwise carry thousands of them.
MAX_WARNINGS = 50


def make_message(
    role: str,
    content: str = "",
    *,
    reasoning_content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    name: str | None = None,
    timestamp: datetime | None = None,
    model: str | None = None,
    is_meta: bool = False,
    is_error: bool | None = None,
) -> dict[str, Any]:
    """An OpenAI-style message with every key present (`tool_calls` is a list, maybe empty)."""
    return {
        "role": role,
        "content": content,
        "reasoning_content": reasoning_content or None,
        "tool_calls": tool_calls if tool_calls is not None else [],
        "tool_call_id": tool_call_id,
        "name": name,
        "timestamp": timestamp,
        "model": model,
        "is_meta": is_meta,
        "is_error": is_error,
    }


def make_tool_call(call_id: str | None, name: str | None, arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call; `arguments` becomes a JSON string whatever the agent stored."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name or "", "arguments": arguments_json(arguments)},
    }


@dataclass(slots=True)
class Usage:
    """Token and cost totals; None means the source did not record that counter."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None

    def add(self, other: Usage) -> None:
        for key in USAGE_KEYS:
            theirs = getattr(other, key)
            if theirs is not None:
                mine = getattr(self, key)
                setattr(self, key, theirs if mine is None else mine + theirs)

    def as_row(self) -> dict[str, Any]:
        row = {key: getattr(self, key) for key in USAGE_KEYS}
        if row["total_tokens"] is None and (self.input_tokens is not None or self.output_tokens is not None):
            row["total_tokens"] = (
                (self.input_tokens or 0)
                + (self.output_tokens or 0)
                + (self.cache_read_tokens or 0)
                + (self.cache_write_tokens or 0)
            )
        # A sum of in-range counters can still overflow the int64 column: such a total is unknown.
        return {key: as_int(value) if type(value) is int else value for key, value in row.items()}


@dataclass(slots=True)
class Rollout:
    """One conversation as a parser rebuilt it; `to_row()` adds the derived columns."""

    agent: str
    source_kind: str
    source_path: str
    session_id: str
    messages: list[dict[str, Any]]
    trace_id: str = ""
    root_session_id: str | None = None
    parent_session_id: str | None = None
    agent_id: str | None = None
    is_sidechain: bool = False
    agent_version: str | None = None
    title: str | None = None
    cwd: str | None = None
    project_path: str | None = None
    git_branch: str | None = None
    model: str | None = None
    models: list[str] = field(default_factory=list)
    provider: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    usage: Usage = field(default_factory=Usage)
    branch_policy: str = "file_order"
    is_partial: bool = False
    parse_warnings: list[str] = field(default_factory=list)
    source_meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        messages = self.messages
        timestamps = [m["timestamp"] for m in messages if m["timestamp"] is not None]
        if self.started_at is not None:
            timestamps.append(self.started_at)
        if self.ended_at is not None:
            timestamps.append(self.ended_at)
        models = list(self.models)
        for message in messages:
            model = message["model"]
            if (
                message["role"] == "assistant"
                and model
                and model not in SYNTHETIC_MODELS
                and model not in models
            ):
                models.append(model)
        warnings = self.parse_warnings
        if len(warnings) > MAX_WARNINGS:
            warnings = [*warnings[:MAX_WARNINGS], f"... and {len(warnings) - MAX_WARNINGS} more warnings"]
        return {
            "trace_id": self.trace_id or f"{self.agent}:{self.session_id}",
            "agent": self.agent,
            "agent_version": self.agent_version,
            "source_kind": self.source_kind,
            "source_path": self.source_path,
            "session_id": self.session_id,
            "root_session_id": self.root_session_id or self.session_id,
            "parent_session_id": self.parent_session_id,
            "agent_id": self.agent_id,
            "is_sidechain": self.is_sidechain,
            "title": self.title,
            "cwd": self.cwd,
            "project_path": self.project_path or self.cwd,
            "git_branch": self.git_branch or None,
            "model": self.model or _main_model(messages) or (models[-1] if models else None),
            "models": models,
            "provider": self.provider,
            "started_at": min(timestamps) if timestamps else None,
            "ended_at": max(timestamps) if timestamps else None,
            "messages": messages,
            "message_count": len(messages),
            "turn_count": sum(1 for m in messages if m["role"] == "user" and not m["is_meta"]),
            "tool_call_count": sum(len(m["tool_calls"]) for m in messages),
            "tool_error_count": sum(1 for m in messages if m["role"] == "tool" and m["is_error"]),
            "first_user_message": next(
                (m["content"] for m in messages if m["role"] == "user" and not m["is_meta"] and m["content"]),
                None,
            ),
            "final_assistant_message": next(
                (m["content"] for m in reversed(messages) if m["role"] == "assistant" and m["content"]), None
            ),
            "usage": self.usage.as_row(),
            "branch_policy": self.branch_policy,
            "is_partial": self.is_partial,
            "parse_warnings": warnings,
            "source_meta": to_json(self.source_meta),
        }


def _main_model(messages: list[dict[str, Any]]) -> str | None:
    """The model that answered most assistant messages (the latest one on a tie)."""
    counts: dict[str, int] = {}
    for message in messages:
        model = message["model"]
        if message["role"] == "assistant" and model and model not in SYNTHETIC_MODELS:
            counts[model] = counts.pop(model, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return [model for model, count in counts.items() if count == best][-1]


def to_utc(value: Any) -> datetime | None:
    """A UTC instant (millisecond precision) from ISO-8601, SQLite text, epoch seconds or epoch ms.

    Naive text is taken as UTC (SQLite's CURRENT_TIMESTAMP and goose write UTC without an offset).
    Numbers above 1e11 are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is 1973.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                return to_utc(float(text))
            except ValueError:
                return None
        if parsed.tzinfo is UTC and not parsed.microsecond % 1000:
            return parsed  # the common case (`...000Z`): already what the conversions below would give
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if abs(value) > 1e11 else float(value)
    try:
        parsed = datetime.fromtimestamp(round(seconds, 3), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
