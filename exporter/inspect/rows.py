"""What each level shows: columns, one-line cells, the text the filter searches, the preview, JSON.

Shared by the picker and by `--print` / `--json`, so the scriptable output is exactly what the
picker lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from exporter.core.values import content_text
from exporter.inspect.calls import Call
from exporter.inspect.sources import HubFile, RunEntry
from exporter.shared.run_summary import TaskInfo
from exporter.shared.tables import human_bytes
from exporter.shared.wire import DecodedResponse

SUMMARY_CHARS = 160
PROMPT_PREVIEW_CHARS = 1000
NEW_MESSAGES_SHOWN = 20
HEADING = "bold cyan"
LABEL = "bold"
DIM = "dim"
FAILED = "bold red"

COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("RUN", "AGENT", "MODELS", "TASKS", "CALLS", "ERRORS"),
    "files": ("FILE", "ROWS", "AGENT", "MODEL", "TASKS", "SIZE"),
    "calls": ("LOC", "RID", "STATUS", "DELTA", "SUMMARY"),
    "messages": ("#", "ROLE", "SUMMARY"),
}


@dataclass
class MessageRow:
    """One row of the messages level: a request message, one of its tool calls, or the response."""

    index: int | None  # position in the request; None for the decoded response
    label: str  # `user`, `assistant→read_file`, `response`, `response→bash`
    message: dict[str, Any]
    tool_call: dict[str, Any] | None = None
    response: DecodedResponse | None = None

    @property
    def role(self) -> str:
        return str(self.message.get("role") or "?")


@dataclass
class Row:
    kind: str
    item: Any  # RunEntry | HubFile | Call | MessageRow
    cells: tuple[str, ...]
    search: str
    failed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- text helpers


def one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def pretty_arguments(arguments: Any) -> str:
    """Tool arguments pretty-printed when they are JSON, else as the model wrote them."""
    if not isinstance(arguments, str):
        return json.dumps(arguments, ensure_ascii=False, indent=2)
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, indent=2)
    except ValueError:
        return arguments


def _function(tool_call: dict[str, Any]) -> dict[str, Any]:
    function = tool_call.get("function")
    return function if isinstance(function, dict) else {}


def message_summary(message: dict[str, Any]) -> str:
    """`assistant→fn [+k] args`, `assistant: text`, `tool: text`, `<role>: text` on one line."""
    role = str(message.get("role") or "?")
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    text = content_text(message.get("content"))
    if calls and not text.strip():
        function = _function(calls[0])
        more = f" +{len(calls) - 1}" if len(calls) > 1 else ""
        return one_line(f"{role}→{function.get('name', '?')}{more} {function.get('arguments', '')}")
    if not text.strip() and message.get("reasoning_content"):
        return one_line(f"{role}: (reasoning) {message['reasoning_content']}")
    return one_line(f"{role}: {text}")


def message_search_text(message: dict[str, Any]) -> str:
    parts = [content_text(message.get("content")), str(message.get("reasoning_content") or "")]
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            function = _function(call)
            parts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(part for part in parts if part)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def size(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


# ---------------------------------------------------------------- rows per level


def run_rows(entries: list[RunEntry]) -> list[Row]:
    rows = []
    for entry in entries:
        cells = (
            entry.run.run_id,
            entry.run.agent,
            ", ".join(entry.models) or "-",
            str(len([t for t in entry.tasks if t.task_id])),
            str(entry.calls),
            str(entry.failed),
        )
        search = "  ".join(cells) + "\n" + "\n".join(f"{t.task_id} {t.prompt}" for t in entry.tasks)
        rows.append(Row("runs", entry, cells, search, failed=entry.failed > 0))
    return rows


def file_rows(files: list[HubFile]) -> list[Row]:
    return [file_row(file) for file in files]


def file_row(file: HubFile) -> Row:
    pending = "…" if not file.loaded else "-"
    cells = (
        file.path.rsplit("/", 1)[-1],
        str(file.rows) if file.rows is not None else pending,
        file.agent or pending,
        file.model or pending,
        str(len(file.tasks)) if file.loaded else pending,
        size(file.size),
    )
    search = "  ".join(cells) + "\n" + "\n".join(f"{t.task_id} {t.prompt}" for t in file.tasks)
    return Row("files", file, cells, search, failed=file.problem is not None)


def call_rows(calls: list[Call]) -> list[Row]:
    rows = []
    for call in calls:
        messages = call.messages
        newest = message_summary(messages[-1]) if messages else "(no messages)"
        cells = (call.loc, call.short_id, call.status, call.change.label, newest)
        new_text = "\n".join(message_search_text(m) for m in messages[call.change.kept :])
        search = "  ".join((*cells, call.request_id, call.model)) + "\n" + new_text
        rows.append(Row("calls", call, cells, search, failed=call.failed))
    return rows


def message_rows(call: Call) -> list[Row]:
    items: list[MessageRow] = []
    for index, message in enumerate(call.messages):
        calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        if not calls or content_text(message.get("content")).strip() or message.get("reasoning_content"):
            items.append(MessageRow(index, str(message.get("role") or "?"), message))
        for tool_call in calls:
            label = f"{message.get('role') or '?'}→{_function(tool_call).get('name', '?')}"
            items.append(MessageRow(index, label, message, tool_call=tool_call))
    decoded = call.decoded
    response = decoded.to_message()
    items.append(MessageRow(None, "response", response, response=decoded))
    for tool_call in response.get("tool_calls") or []:
        label = f"response→{_function(tool_call).get('name', '?')}"
        items.append(MessageRow(None, label, response, tool_call=tool_call, response=decoded))
    return [_message_row(item) for item in items]


def _message_row(item: MessageRow) -> Row:
    number = "" if item.index is None else str(item.index)
    if item.tool_call is not None:
        function = _function(item.tool_call)
        summary = one_line(str(function.get("arguments", "")))
        search = f"{function.get('name', '')} {function.get('arguments', '')}"
    elif item.response is not None:
        summary = _response_summary(item.response)
        search = message_search_text(item.message) + "\n" + (item.response.error or "")
    else:
        summary = message_summary(item.message).split(": ", 1)[-1]
        search = message_search_text(item.message)
    failed = item.response is not None and bool(item.response.error or item.response.problems)
    cells = (number, item.label, summary)
    return Row("messages", item, cells, "  ".join(cells) + "\n" + search, failed=failed)


def _response_summary(decoded: DecodedResponse) -> str:
    if decoded.error:
        return one_line(f"error: {decoded.error}")
    text = decoded.content or (f"(reasoning) {decoded.reasoning}" if decoded.reasoning else "")
    calls = f" +{len(decoded.tool_calls)} tool call(s)" if decoded.tool_calls else ""
    finish = f" [{decoded.finish_reason}]" if decoded.finish_reason else ""
    marker = " ⚠" if decoded.problems else ""
    return one_line(f"{text}{calls}{finish}{marker}".strip() or "(empty)")


# ---------------------------------------------------------------- previews


def preview(row: Row) -> Text:
    return PREVIEWS[row.kind](row.item)


def _field(text: Text, label: str, value: str, style: str = "") -> None:
    text.append(f"{label:<9}", LABEL)
    text.append(value + "\n", style)


def _heading(text: Text, title: str) -> None:
    text.append(f"\n── {title} ──\n", HEADING)


def _tasks(text: Text, tasks: list[TaskInfo]) -> None:
    _heading(text, f"tasks ({len(tasks)})")
    for task in tasks:
        turns = f", {task.turns} turns" if task.turns else ""
        text.append(f"{task.task_id or '(untagged)'}", LABEL)
        text.append(f"  {task.calls} calls{turns}\n", DIM)
        if task.prompt:
            text.append(f"  {one_line(task.prompt, 300)}\n")


def _findings(text: Text, findings: list[dict[str, Any]]) -> None:
    if not findings:
        return
    _heading(text, f"scan findings ({len(findings)})")
    for finding in findings:
        where = (
            f"{finding.get('file', '?')}:{finding.get('line')}"
            if finding.get("line")
            else finding.get("file", "?")
        )
        status = str(finding.get("status", "?"))
        text.append(f"{finding.get('detector', '?')} ", LABEL)
        text.append(status, FAILED if status == "verified" else "yellow")
        text.append(f"  {finding.get('preview', '')}  {where}\n")


def run_preview(entry: RunEntry) -> Text:
    text = Text()
    info = entry.run.info
    _field(text, "run", entry.run.run_id)
    _field(text, "agent", entry.run.agent)
    _field(text, "path", str(entry.run.path))
    _field(text, "status", f"{info.status or '-'}  started {info.started_at or '-'}")
    _field(text, "models", ", ".join(entry.models) or "-")
    _field(text, "calls", f"{entry.calls}  failed {entry.failed}", FAILED if entry.failed else "")
    if info.upstreams:
        _field(text, "upstream", ", ".join(info.upstreams))
    _findings(text, entry.findings)
    _tasks(text, entry.tasks)
    return text


def file_preview(file: HubFile) -> Text:
    text = Text()
    _field(text, "file", file.path)
    _field(text, "size", size(file.size))
    if file.problem:
        _field(text, "problem", file.problem, FAILED)
    if not file.loaded:
        _field(text, "footer", "reading…", DIM)
        return text
    _field(text, "rows", str(file.rows))
    _field(text, "agent", file.agent or "-")
    _field(text, "model", file.model or "-")
    _field(text, "run", file.run_id or "-")
    _tasks(text, file.tasks)
    return text


def call_preview(call: Call) -> Text:
    text = Text()
    _field(text, "request", call.request_id)
    _field(text, "run", f"{call.run_id or '-'}  seq {call.seq if call.seq is not None else '-'}")
    _field(
        text,
        "task",
        f"{call.task_id or '-'}  turn {call.turn if call.turn is not None else '-'}  "
        f"call {call.index}  {call.change.label}  "
        f"(conversation {call.chain}{', side chain' if call.sidechain else ''})",
    )
    _field(text, "time", when(call.captured_at))
    _field(
        text,
        "status",
        call.status + (f"  {call.error.get('message', '')}" if call.error else ""),
        FAILED if call.failed else "",
    )
    served = f" → {call.served_model}" if call.served_model and call.served_model != call.model else ""
    _field(text, "model", f"{call.model}{served}  ({call.api or '?'}{', streamed' if call.stream else ''})")
    ttfb = f"ttfb {call.ttfb_ms:.0f} ms, " if call.ttfb_ms is not None else ""
    total = f"total {call.duration_ms:.0f} ms" if call.duration_ms is not None else "-"
    _field(text, "latency", ttfb + total)
    _field(text, "size", f"request {size(call.request_size)}, response {size(call.response_size)}")
    if call.usage:
        _field(text, "usage", json.dumps(call.usage, ensure_ascii=False))
    redacted = call.redacted_headers
    _field(
        text,
        "redacted",
        "(headers are not kept in parquet)" if redacted is None else ", ".join(redacted) or "-",
    )
    _findings(text, call.findings)
    messages = call.messages
    prompt = next((m for m in messages if m.get("role") == "user"), None)
    if prompt is not None:
        _heading(text, "prompt")
        text.append(content_text(prompt.get("content"))[:PROMPT_PREVIEW_CHARS] + "\n")
    new = messages[call.change.kept :]
    _heading(text, f"new messages ({len(new)} of {len(messages)})")
    for offset, message in enumerate(
        new[-NEW_MESSAGES_SHOWN:], start=max(len(messages) - NEW_MESSAGES_SHOWN, call.change.kept)
    ):
        text.append(f"[{offset}] ", DIM)
        text.append(message_summary(message) + "\n")
    _heading(text, "response")
    _decoded(text, call.decoded)
    return text


def _decoded(text: Text, decoded: DecodedResponse) -> None:
    if decoded.error:
        _field(text, "error", decoded.error, FAILED)
    for problem in decoded.problems:
        _field(text, "⚠", problem, "yellow")
    if decoded.reasoning:
        text.append("reasoning\n", LABEL)
        text.append(decoded.reasoning + "\n", "italic")
    if decoded.content:
        text.append(decoded.content + "\n")
    for call in decoded.tool_calls:
        text.append(f"→ {call.name}", LABEL)
        text.append(f"  {call.id}\n", DIM)
        text.append(pretty_arguments(call.arguments) + "\n")
    _field(text, "finish", decoded.finish_reason or "-")
    if decoded.usage:
        _field(text, "usage", json.dumps(decoded.usage, ensure_ascii=False))


def message_preview(item: MessageRow) -> Text:
    text = Text()
    _field(text, "role", item.label)
    if item.index is not None:
        _field(text, "index", str(item.index))
    if item.message.get("tool_call_id"):
        _field(text, "answers", str(item.message["tool_call_id"]))
    if item.tool_call is not None:
        function = _function(item.tool_call)
        _field(text, "call id", str(item.tool_call.get("id") or "-"))
        _heading(text, f"arguments of {function.get('name', '?')}")
        text.append(pretty_arguments(function.get("arguments", "")) + "\n")
        return text
    if item.response is not None:
        _heading(text, "decoded response")
        _decoded(text, item.response)
        return text
    if item.message.get("reasoning_content"):
        _heading(text, "reasoning")
        text.append(str(item.message["reasoning_content"]) + "\n", "italic")
    _heading(text, "content")
    text.append(content_text(item.message.get("content")) + "\n")
    return text


PREVIEWS: dict[str, Callable[[Any], Text]] = {
    "runs": run_preview,
    "files": file_preview,
    "calls": call_preview,
    "messages": message_preview,
}


# ---------------------------------------------------------------- JSON


def _tasks_json(tasks: list[TaskInfo]) -> list[dict[str, Any]]:
    return [{"id": t.task_id, "calls": t.calls, "turns": t.turns, "prompt": t.prompt} for t in tasks]


def row_json(row: Row) -> dict[str, Any]:
    item = row.item
    if isinstance(item, RunEntry):
        return {
            "run_id": item.run.run_id,
            "agent": item.run.agent,
            "models": item.models,
            "calls": item.calls,
            "failed": item.failed,
            "findings": len(item.findings),
            "tasks": _tasks_json(item.tasks),
            "path": str(item.run.path),
        }
    if isinstance(item, HubFile):
        return {
            "path": item.path,
            "size": item.size,
            "rows": item.rows,
            "agent": item.agent,
            "model": item.model,
            "run_id": item.run_id,
            "tasks": _tasks_json(item.tasks),
            "problem": item.problem,
        }
    if isinstance(item, Call):
        return {
            "request_id": item.request_id,
            "run_id": item.run_id,
            "seq": item.seq,
            "loc": item.loc,
            "task_id": item.task_id,
            "turn": item.turn,
            "status": item.status,
            "status_code": item.status_code,
            "failed": item.failed,
            "delta": item.change.label,
            "messages": len(item.message_ids),
            "model": item.model,
            "api": item.api,
            "captured_at": item.captured_at,
            "duration_ms": item.duration_ms,
            "summary": row.cells[-1],
            "findings": len(item.findings),
        }
    message: MessageRow = item
    return {
        "index": message.index,
        "role": message.role,
        "label": message.label,
        "message": message.message if message.tool_call is None else None,
        "tool_call": message.tool_call,
        "problems": message.response.problems if message.response else [],
        "error": message.response.error if message.response else None,
    }
