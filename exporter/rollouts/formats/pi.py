"""pi (pi-coding-agent): `~/.pi/agent/sessions/--<cwd>--/<ts>_<uuid>.jsonl`.

A session file is a tree (v2+): every entry has `id`/`parentId`, and the *last* entry marks the active
branch; the conversation is the path from it back to the root (`branch_policy` `active_path`). Version 1
files are linear (`file_order`). Entries carry ISO timestamps; the messages inside carry epoch ms.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from exporter.core.values import as_dict, as_float, as_int, as_list, as_str, join_text
from exporter.rollouts.base import BrokenUnit, JsonlFormat, Probe, Unit, home_of
from exporter.rollouts.jsonl_source import LineScan, scan_jsonl
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc

_DECODER = msgspec.json.Decoder(dict[str, Any])
_KNOWN_ENTRIES = frozenset(
    {
        "message",
        "model_change",
        "thinking_level_change",
        "compaction",
        "branch_summary",
        "custom",
        "custom_message",
        "label",
        "session_info",
    }
)
# Message roles pi injects into the context on the user side (summaries, hook output, `!` commands).
_INJECTED_ROLES = frozenset({"bashExecution", "custom", "hookMessage", "branchSummary", "compactionSummary"})


class PiFormat(JsonlFormat):
    name = "pi"
    agent = "pi"
    source_kind = "pi_coding_agent"
    file_pattern = "*.jsonl"

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        if env.get("PI_CODING_AGENT_SESSION_DIR"):
            return [Path(env["PI_CODING_AGENT_SESSION_DIR"])]
        return [Path(env.get("PI_CODING_AGENT_DIR") or home_of(env) / ".pi" / "agent") / "sessions"]

    def detects(self, probe: Probe) -> bool:
        first = probe.json_lines[0] if probe.json_lines else {}
        return first.get("type") == "session" and "id" in first and "cwd" in first

    def hydrate(self, unit: Unit) -> list[Rollout]:
        scan = LineScan()
        header: dict[str, Any] | None = None
        entries: list[dict[str, Any]] = []
        for number, line in scan_jsonl(unit.path, _DECODER, scan):
            kind = as_str(line.get("type"))
            if header is None and kind == "session":
                header = line
            elif kind in _KNOWN_ENTRIES:
                entries.append(line)
            else:
                scan.warnings.append(f"line {number}: unknown entry type {line.get('type')!r} skipped")
        if header is None:
            raise BrokenUnit("no session header line")
        path, branch_policy, branch_points = _active_path(entries, scan.warnings)
        builder = _Builder()
        for entry in path:
            builder.add(entry)
        session_id = as_str(header.get("id")) or unit.relative_path
        return [
            Rollout(
                agent="pi",
                source_kind="pi_coding_agent",
                source_path=str(unit.path.resolve()),
                session_id=session_id,
                trace_id=f"pi:{session_id}",
                parent_session_id=_session_id_of(header.get("parentSession")),
                cwd=as_str(header.get("cwd")),
                title=builder.title,
                provider=builder.provider,
                started_at=to_utc(header.get("timestamp")),
                messages=builder.messages,
                usage=builder.usage,
                branch_policy=branch_policy,
                is_partial=scan.is_partial,
                parse_warnings=list(scan.warnings),
                source_meta={
                    "version": header.get("version"),
                    "has_branches": branch_points > 0,
                    "branch_points": branch_points,
                    "entries": len(entries),
                    "entries_on_path": len(path),
                    "compaction_count": builder.compactions,
                    "file": unit.relative_path,
                },
            )
        ]


def _session_id_of(parent: Any) -> str | None:
    """`parentSession` is a path to the parent's file; its id is the part after the last `_`."""
    text = as_str(parent)
    return Path(text).stem.rsplit("_", 1)[-1] if text else None


def _active_path(entries: list[dict[str, Any]], warnings: list[str]) -> tuple[list[dict[str, Any]], str, int]:
    if not any("id" in entry for entry in entries):
        return entries, "file_order", 0
    by_id = {entry["id"]: entry for entry in entries if isinstance(entry.get("id"), str)}
    children = Counter(entry.get("parentId") for entry in entries if isinstance(entry.get("parentId"), str))
    path: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: dict[str, Any] | None = entries[-1] if entries else None
    while current is not None:
        path.append(current)
        seen.add(as_str(current.get("id")) or "")
        parent = current.get("parentId")
        if not isinstance(parent, str):
            break
        if parent in seen:
            warnings.append(f"parentId cycle at {parent}; path cut there")
            break
        current = by_id.get(parent)
        if current is None:
            warnings.append(f"parent entry {parent} missing; path starts after it")
    path.reverse()
    return path, "active_path", sum(1 for count in children.values() if count > 1)


class _Builder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage()
        self.provider: str | None = None
        self.model: str | None = None
        self.title: str | None = None
        self.compactions = 0

    def add(self, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        timestamp = to_utc(entry.get("timestamp"))
        if kind == "model_change":
            self.provider = as_str(entry.get("provider")) or self.provider
            self.model = as_str(entry.get("modelId")) or self.model
        elif kind == "session_info":
            self.title = as_str(entry.get("name")) or self.title
        elif kind == "compaction":
            self.compactions += 1
            summary = as_str(entry.get("summary"))
            if summary:
                self.messages.append(make_message("user", summary, timestamp=timestamp, is_meta=True))
        elif kind == "branch_summary":
            summary = as_str(entry.get("summary"))
            if summary:
                self.messages.append(make_message("user", summary, timestamp=timestamp, is_meta=True))
        elif kind == "custom_message":
            self.messages.append(
                make_message("user", _text(entry.get("content")), timestamp=timestamp, is_meta=True)
            )
        elif kind == "message":
            self._message(as_dict(entry.get("message")), timestamp)

    def _message(self, message: dict[str, Any], timestamp: Any) -> None:
        role = as_str(message.get("role"))
        timestamp = to_utc(message.get("timestamp")) or timestamp
        if role == "user":
            self.messages.append(make_message("user", _text(message.get("content")), timestamp=timestamp))
        elif role == "assistant":
            self._assistant(message, timestamp)
        elif role == "toolResult":
            self.messages.append(
                make_message(
                    "tool",
                    _text(message.get("content")),
                    tool_call_id=as_str(message.get("toolCallId")),
                    name=as_str(message.get("toolName")),
                    timestamp=timestamp,
                    is_error=bool(message.get("isError")),
                )
            )
        elif role == "bashExecution":
            if not message.get("excludeFromContext"):
                text = f"$ {as_str(message.get('command')) or ''}\n{as_str(message.get('output')) or ''}"
                self.messages.append(make_message("user", text, timestamp=timestamp, is_meta=True))
        elif role in _INJECTED_ROLES:
            content = message.get("content", message.get("summary"))
            self.messages.append(make_message("user", _text(content), timestamp=timestamp, is_meta=True))

    def _assistant(self, message: dict[str, Any], timestamp: Any) -> None:
        texts, thoughts, calls = [], [], []
        for block in as_list(message.get("content")):
            block = as_dict(block)
            kind = block.get("type")
            if kind == "text":
                texts.append(as_str(block.get("text")) or "")
            elif kind == "thinking":
                thoughts.append(as_str(block.get("thinking")) or "")
            elif kind == "toolCall":
                calls.append(
                    make_tool_call(as_str(block.get("id")), as_str(block.get("name")), block.get("arguments"))
                )
        self.provider = as_str(message.get("provider")) or self.provider
        self.messages.append(
            make_message(
                "assistant",
                join_text(texts),
                reasoning_content=join_text(thoughts),
                tool_calls=calls,
                timestamp=timestamp,
                model=as_str(message.get("model")) or self.model,
            )
        )
        usage = as_dict(message.get("usage"))
        if usage:
            self.usage.add(
                Usage(
                    input_tokens=as_int(usage.get("input")),
                    output_tokens=as_int(usage.get("output")),
                    cache_read_tokens=as_int(usage.get("cacheRead")),
                    cache_write_tokens=as_int(usage.get("cacheWrite")),
                    total_tokens=as_int(usage.get("totalTokens")),
                    cost_usd=as_float(as_dict(usage.get("cost")).get("total")),
                )
            )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in as_list(content):
        block = as_dict(block)
        if block.get("type") == "text":
            parts.append(as_str(block.get("text")) or "")
        elif block.get("type") == "image":
            parts.append(f"[image: {as_str(block.get('mimeType')) or 'unknown'}]")
    return join_text(parts)
