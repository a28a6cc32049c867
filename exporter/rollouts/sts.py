"""Session Trace Simple Format (STS): one conversation per JSONL file, rendered by the Hub's trace viewer.

Line 1 is the header `{"type": "session", "harness", "id", "name", ...}` (extra keys are allowed;
ours go under `agentcap`, as JSON text: a value whose fields are null in one file and numbers in
the next would stop `datasets` from reading the files as plain JSON lines), then one `{"type": "message", "message": {...}}` per message, in order.
Message fields: `role` (user, assistant, system, tool), `content` (text, may be empty),
`reasoningContent`, `toolCalls` (`[{"id", "function": {"name", "arguments"}}]`, arguments a JSON
string), `toolCallId` (a tool message's link to a `toolCalls[].id`), `timestamp` (epoch ms) and
`model`. We add `isError` on a message that stands for a failed call.

Written from a rollout row (`exporter.rollouts.record`), so every source the rollouts readers
understand (captures, opencode, goose, Hermes…) renders the same way; read back into rollout
messages for the round trip. `validate` checks a file against the format's field table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from exporter.rollouts.rollout import make_message, make_tool_call, to_utc

ROLES = frozenset({"user", "assistant", "system", "tool"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "reasoningContent", "toolCalls", "toolCallId", "timestamp", "model", "isError"}
)
NAME_CHARS = 80
# Epoch milliseconds between 2001-09-09 and 2286-11-20: a value in seconds (or microseconds) is outside.
MIN_MS, MAX_MS = 10**12, 10**13


def title(text: str | None) -> str:
    """A short one-line title from a prompt: whitespace collapsed, cut at a word with an ellipsis."""
    line = " ".join((text or "").split())
    if len(line) <= NAME_CHARS:
        return line
    cut = line[: NAME_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[NAME_CHARS // 2 :] else cut) + "…"


def epoch_ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)


def header(row: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The header line of a rollout row: the agent as harness, the trace id as id, a title as name."""
    return {
        "type": "session",
        "harness": row["agent"],
        "id": row["trace_id"],
        "name": title(row["title"] or row["first_user_message"]) or row["session_id"],
        "agentcap": json.dumps(meta, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
    }


def session_lines(row: dict[str, Any], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Header + one line per message. Tool results whose call is not in the conversation become
    system notes (a tool message must name a call made before it)."""
    lines = [header(row, meta)]
    called: set[str] = set()
    for message in row["messages"]:
        out = sts_message(message)
        if out["role"] == "assistant":
            called.update(call["id"] for call in out.get("toolCalls", []))
        elif out["role"] == "tool" and out.get("toolCallId") not in called:
            link = out.pop("toolCallId", None) or "?"
            out["role"] = "system"
            out["content"] = (
                f"[result of tool call {link}, which is not in this conversation]\n{out['content']}"
            )
        lines.append({"type": "message", "message": out})
    return lines


def sts_message(message: dict[str, Any]) -> dict[str, Any]:
    """One rollout message → an STS message (keys only when they have a value)."""
    role = message["role"]
    content = message["content"] or ""
    if role not in ROLES:  # an item no chat role expresses (a Responses web search, …): a note
        content, role = f"[{role}] {content}", "system"
    out: dict[str, Any] = {"role": role, "content": content}
    if message.get("reasoning_content"):
        out["reasoningContent"] = message["reasoning_content"]
    calls = [call for call in message.get("tool_calls") or [] if role == "assistant"]
    if calls:
        out["toolCalls"] = [
            {
                "id": call.get("id") or f"call_{position}",
                "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
            }
            for position, call in enumerate(calls)
        ]
    if role == "tool" and message.get("tool_call_id"):
        out["toolCallId"] = message["tool_call_id"]
    stamp = epoch_ms(message.get("timestamp"))
    if stamp is not None:
        out["timestamp"] = stamp
    if message.get("model"):
        out["model"] = message["model"]
    if message.get("is_error"):
        out["isError"] = True
    return out


def dumps(lines: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines)


def loads(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def rollout_messages(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages of an STS file as rollout messages (exporter.rollouts.record.make_message)."""
    messages = []
    for line in lines[1:]:
        message = line["message"]
        messages.append(
            make_message(
                message["role"],
                message["content"],
                reasoning_content=message.get("reasoningContent"),
                tool_calls=[
                    make_tool_call(call["id"], call["function"]["name"], call["function"]["arguments"])
                    for call in message.get("toolCalls", [])
                ],
                tool_call_id=message.get("toolCallId"),
                timestamp=to_utc(message["timestamp"]) if "timestamp" in message else None,
                model=message.get("model"),
                is_error=True if message.get("isError") else None,
            )
        )
    return messages


def validate(text: str) -> list[str]:
    """Every way `text` breaks the STS field table, as `line N: problem`; [] when it is valid."""
    problems: list[str] = []
    lines: list[tuple[int, Any]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            if number < text.count("\n") + 1:
                problems.append(f"line {number}: blank line")
            continue
        try:
            lines.append((number, json.loads(raw)))
        except ValueError as error:
            problems.append(f"line {number}: not JSON ({error})")
    if not lines:
        return [*problems, "no header: the file is empty"]
    number, first = lines[0]
    if not (isinstance(first, dict) and first.get("type") == "session"):
        problems.append(f"line {number}: the first line must be the session header (type 'session')")
    else:
        for key in ("harness", "id"):
            if not isinstance(first.get(key), str) or not first[key]:
                problems.append(f"line {number}: header needs a non-empty string {key!r}")
        if "name" in first and not isinstance(first["name"], str):
            problems.append(f"line {number}: header 'name' must be a string")
    called: set[str] = set()
    for number, line in lines[1:]:
        if not isinstance(line, dict) or line.get("type") != "message":
            problems.append(f"line {number}: expected a message line (type 'message'); one header per file")
            continue
        message = line.get("message")
        if not isinstance(message, dict):
            problems.append(f"line {number}: 'message' must be an object")
            continue
        problems += [f"line {number}: {p}" for p in _message_problems(message, called)]
    return problems


def _message_problems(message: dict[str, Any], called: set[str]) -> list[str]:
    problems = [f"unknown key {key!r}" for key in sorted(set(message) - MESSAGE_KEYS)]
    role = message.get("role")
    if role not in ROLES:
        problems.append(f"role {role!r} is not one of {sorted(ROLES)}")
    if not isinstance(message.get("content"), str):
        problems.append("'content' is required and must be text (may be empty)")
    for key in ("reasoningContent", "model"):
        if key in message and not isinstance(message[key], str):
            problems.append(f"{key!r} must be a string")
    if "timestamp" in message:
        stamp = message["timestamp"]
        if isinstance(stamp, bool) or not isinstance(stamp, int) or not MIN_MS <= stamp < MAX_MS:
            problems.append(f"'timestamp' must be epoch milliseconds, got {stamp!r}")
    if "toolCalls" in message:
        problems += _tool_call_problems(message, called)
    if role == "tool":
        link = message.get("toolCallId")
        if not isinstance(link, str) or link not in called:
            problems.append(f"tool message's toolCallId {link!r} names no earlier toolCalls[].id")
    elif "toolCallId" in message:
        problems.append("'toolCallId' belongs on tool messages only")
    if "isError" in message and message["isError"] is not True:
        problems.append("'isError' is true when present")
    return problems


def _tool_call_problems(message: dict[str, Any], called: set[str]) -> list[str]:
    calls = message["toolCalls"]
    if message.get("role") != "assistant":
        return ["'toolCalls' belongs on assistant messages only"]
    if not isinstance(calls, list) or not calls:
        return ["'toolCalls' must be a non-empty list"]
    problems = []
    ids = []
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            problems.append(f"toolCalls[{position}] needs a non-empty string 'id'")
            continue
        ids.append(call["id"])
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            problems.append(f"toolCalls[{position}].function needs a string 'name'")
        elif not isinstance(function.get("arguments"), str):
            problems.append(f"toolCalls[{position}].function.arguments must be a JSON string")
    if len(set(ids)) != len(ids):
        problems.append("toolCalls ids repeat within the message")
    called.update(ids)
    return problems
