"""Codex CLI: `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl`.

Traps handled here:
- messages and reasoning are stored twice, as `response_item`s (what the model saw) and as `event_msg`s
  (what the UI showed): response items are kept, event copies are used only when a file has none;
- the git branch is nested under `session_meta.git`;
- injected context (`<environment_context>`, AGENTS.md, permissions, developer messages) arrives as
  user/developer messages: marked `is_meta`, not counted as user turns;
- the model lives in `turn_context` (it can change per turn); totals are the last `token_count`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from exporter.core.values import as_dict, as_int, as_list, as_str, join_text, to_json
from exporter.rollouts.base import BrokenUnit, JsonlFormat, Probe, Unit, home_of
from exporter.rollouts.jsonl_source import LineScan, scan_jsonl
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc

# Codex lines are small and varied (payload shapes differ per item type): plain dicts suit them.
_DECODER = msgspec.json.Decoder(dict[str, Any])
_RESPONSE_ITEM_TYPES = frozenset(
    {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "web_search_call",
        "ghost_snapshot",
        "compaction",
        "tool_search_call",
        "tool_search_output",
        "image_generation_call",
    }
)
_TOP_LEVEL_TYPES = frozenset({"session_meta", "turn_context", "response_item", "event_msg", "compacted"})
_CALL_TYPES = frozenset({"function_call", "custom_tool_call", "local_shell_call", "web_search_call"})
_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output", "tool_search_output"})
_INJECTED_PREFIXES = (
    "<environment_context>",
    "<user_instructions>",
    "<permissions instructions>",
    "<user_shell_command>",
    "<turn_aborted>",
    "# AGENTS.md instructions",
    "<INSTRUCTIONS>",
)


class CodexFormat(JsonlFormat):
    name = "codex"
    agent = "codex"
    source_kind = "codex"
    file_pattern = "rollout-*.jsonl"

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        home = Path(env.get("CODEX_HOME") or home_of(env) / ".codex")
        return [home / "sessions", home / "archived_sessions"]

    def detects(self, probe: Probe) -> bool:
        first = probe.json_lines[0] if probe.json_lines else {}
        kind = first.get("type")
        if isinstance(kind, str) and kind in _TOP_LEVEL_TYPES and "payload" in first:
            return True
        return "id" in first and "instructions" in first and "timestamp" in first

    def hydrate(self, unit: Unit) -> list[Rollout]:
        session = _CodexSession()
        scan = LineScan()
        for number, line in scan_jsonl(unit.path, _DECODER, scan):
            session.feed(number, line, scan.warnings)
        if session.session_id is None and not session.messages:
            raise BrokenUnit(
                "no session_meta line and no messages" if scan.good_lines else "no readable lines"
            )
        return [session.rollout(unit, scan)]


class _CodexSession:
    """Accumulates one rollout file line by line."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.meta: dict[str, Any] = {}
        self.model: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.event_messages: list[dict[str, Any]] = []
        self.pending_reasoning: list[str] = []
        self.tool_names: dict[str, str] = {}
        self.usage = Usage()
        self.item_types: Counter[str] = Counter()
        self.compactions = 0
        self.started_at: Any = None

    def feed(self, number: int, line: dict[str, Any], warnings: list[str]) -> None:
        kind, payload = as_str(line.get("type")), line.get("payload")
        if not isinstance(payload, dict):
            # Files from before the {timestamp, type, payload} envelope: a bare header, bare items.
            if kind is None and "id" in line:
                kind, payload = "session_meta", line
            elif kind in _RESPONSE_ITEM_TYPES:
                kind, payload = "response_item", line
            elif "record_type" in line:
                return  # old state markers, no conversation
            else:
                payload = {}
        timestamp = to_utc(line.get("timestamp"))
        if kind == "session_meta":
            self._session_meta(payload)
        elif kind == "turn_context":
            self.model = as_str(payload.get("model")) or self.model
        elif kind == "response_item":
            self._response_item(payload, timestamp, number, warnings)
        elif kind == "event_msg":
            self._event(payload, timestamp)
        elif kind == "compacted":
            self.compactions += 1
        else:
            warnings.append(f"line {number}: unknown item type {kind!r} skipped")

    def _session_meta(self, payload: dict[str, Any]) -> None:
        if self.session_id is not None:
            return  # forks repeat their parent's meta after their own; the first one is this file's
        self.session_id = as_str(payload.get("id"))
        self.meta = payload
        self.started_at = to_utc(payload.get("timestamp"))
        instructions = as_str(payload.get("instructions")) or as_str(
            as_dict(payload.get("base_instructions")).get("text")
        )
        if instructions:
            self.messages.append(
                make_message("system", instructions, timestamp=self.started_at, is_meta=True)
            )

    def _response_item(self, item: dict[str, Any], timestamp: Any, number: int, warnings: list[str]) -> None:
        kind = as_str(item.get("type")) or ""
        self.item_types[kind] += 1
        if kind == "message":
            role = as_str(item.get("role")) or "user"
            text = join_text(
                [as_str(as_dict(part).get("text")) or "" for part in as_list(item.get("content"))]
            )
            if role == "assistant":
                self._assistant(timestamp)["content"] = text
                return
            is_meta = role in ("developer", "system") or text.lstrip().startswith(_INJECTED_PREFIXES)
            role = "system" if role == "developer" else role
            self.messages.append(make_message(role, text, timestamp=timestamp, is_meta=is_meta))
        elif kind == "reasoning":
            summary = [as_str(as_dict(part).get("text")) or "" for part in as_list(item.get("summary"))]
            content = [as_str(as_dict(part).get("text")) or "" for part in as_list(item.get("content"))]
            self.pending_reasoning.append(join_text(summary) or join_text(content))
        elif kind in _CALL_TYPES:
            self._tool_call(kind, item, timestamp)
        elif kind in _OUTPUT_TYPES:
            call_id = as_str(item.get("call_id"))
            output, is_error = _output_text(item.get("output"))
            self.messages.append(
                make_message(
                    "tool",
                    output,
                    tool_call_id=call_id,
                    name=self.tool_names.get(call_id or ""),
                    timestamp=timestamp,
                    is_error=is_error,
                )
            )
        elif kind in ("ghost_snapshot", "compaction"):
            self.compactions += kind == "compaction"
        else:
            warnings.append(f"line {number}: unknown response item {kind!r} skipped")

    def _assistant(self, timestamp: Any) -> dict[str, Any]:
        """The assistant message of the current model call: reuse the last one while it only gathers
        tool calls (one response can hold text plus several calls), else start a new one."""
        last = self.messages[-1] if self.messages else None
        if (
            last is not None
            and last["role"] == "assistant"
            and not self.pending_reasoning
            and not last["content"]
        ):
            return last
        message = make_message(
            "assistant",
            timestamp=timestamp,
            model=self.model,
            reasoning_content=join_text(self.pending_reasoning),
        )
        self.pending_reasoning = []
        self.messages.append(message)
        return message

    def _tool_call(self, kind: str, item: dict[str, Any], timestamp: Any) -> None:
        call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
        if kind == "function_call":
            name, arguments = as_str(item.get("name")), item.get("arguments")
        elif kind == "custom_tool_call":
            # Free-form tools (apply_patch) take raw text; wrapped so `arguments` stays a JSON object.
            name, arguments = as_str(item.get("name")), {"input": item.get("input")}
        elif kind == "local_shell_call":
            name, arguments = "local_shell", as_dict(item.get("action"))
        else:
            name, arguments = "web_search", as_dict(item.get("action"))
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant" or self.pending_reasoning:
            last = self._assistant(timestamp)
        last["tool_calls"].append(make_tool_call(call_id, name, arguments))
        if call_id and name:
            self.tool_names[call_id] = name

    def _event(self, payload: dict[str, Any], timestamp: Any) -> None:
        kind = as_str(payload.get("type"))
        if kind == "token_count":
            totals = as_dict(as_dict(payload.get("info")).get("total_token_usage"))
            if totals:
                cached = as_int(totals.get("cached_input_tokens"))
                raw_input = as_int(totals.get("input_tokens"))
                self.usage = Usage(
                    # Codex counts cached tokens inside input_tokens; split them like the other agents.
                    input_tokens=None if raw_input is None else raw_input - (cached or 0),
                    output_tokens=as_int(totals.get("output_tokens")),
                    cache_read_tokens=cached,
                    reasoning_tokens=as_int(totals.get("reasoning_output_tokens")),
                    total_tokens=as_int(totals.get("total_tokens")),
                )
        elif kind in ("user_message", "agent_message"):
            role = "user" if kind == "user_message" else "assistant"
            text = as_str(payload.get("message")) or ""
            self.event_messages.append(make_message(role, text, timestamp=timestamp, model=self.model))

    def rollout(self, unit: Unit, scan: LineScan) -> Rollout:
        messages = self.messages
        conversation = any(m["role"] in ("user", "assistant") for m in messages)
        if not conversation and self.event_messages:  # files written before response items existed
            messages = messages + self.event_messages
        meta, git = self.meta, as_dict(self.meta.get("git"))
        source = meta.get("source")
        session_id = self.session_id or unit.relative_path
        parent = as_str(meta.get("forked_from_id")) or as_str(
            as_dict(as_dict(as_dict(source).get("subagent")).get("thread_spawn")).get("parent_thread_id")
        )
        return Rollout(
            agent="codex",
            source_kind="codex",
            source_path=str(unit.path.resolve()),
            session_id=session_id,
            trace_id=f"codex:{session_id}",
            parent_session_id=parent,
            is_sidechain=isinstance(source, dict),
            agent_version=as_str(meta.get("cli_version")),
            cwd=as_str(meta.get("cwd")),
            git_branch=as_str(git.get("branch")),
            model=self.model,
            provider=as_str(meta.get("model_provider")),
            started_at=self.started_at,
            messages=messages,
            usage=self.usage,
            is_partial=scan.is_partial,
            parse_warnings=list(scan.warnings),
            source_meta={
                "originator": meta.get("originator"),
                "source": source,
                "git_commit": git.get("commit_hash"),
                "git_remote": git.get("repository_url"),
                "agent_nickname": meta.get("agent_nickname"),
                "agent_role": meta.get("agent_role"),
                "response_item_types": dict(self.item_types),
                "compaction_count": self.compactions,
                "file": unit.relative_path,
            },
        )


def _output_text(output: Any) -> tuple[str, bool | None]:
    """Tool output text and whether it failed, from the string or `{content, success}` shapes."""
    if isinstance(output, dict):
        text = output.get("content")
        success = output.get("success")
        return (text if isinstance(text, str) else to_json(output)), (
            None if success is None else not success
        )
    if not isinstance(output, str):
        return ("" if output is None else to_json(output)), None
    if output.startswith('{"output"'):
        # Shell calls return {"output": ..., "metadata": {"exit_code": N}} as a JSON string.
        try:
            decoded = msgspec.json.decode(output)
        except msgspec.DecodeError:
            return output, None
        exit_code = as_int(as_dict(as_dict(decoded).get("metadata")).get("exit_code"))
        return output, None if exit_code is None else exit_code != 0
    return output, None
