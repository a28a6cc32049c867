"""goose: `<data_dir>/sessions/sessions.db` (SQLite; session times as UTC text, message times epoch s).

Traps handled here: the tool *responses* arrive inside the next **user** row (`toolResponse` items),
so a user row may hold no user text at all; tool requests and results are wrapped in
`{status: success, value}` / `{status: error, error}`; items not `agentVisible` were never sent to the
model and are dropped; usage is only kept per session.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from exporter.core.values import as_dict, as_int, as_list, as_str, join_text, to_json
from exporter.rollouts.base import SqliteFormat, Unit, home_of
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc

_SILENT_ITEMS = frozenset(
    {"redactedThinking", "systemNotification", "frontendToolRequest", "toolConfirmationRequest"}
)


def _json(raw: Any) -> Any:
    if not isinstance(raw, str | bytes):
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


class GooseFormat(SqliteFormat):
    name = "goose"
    agent = "goose"
    source_kind = "goose"
    file_pattern = "sessions.db"
    required_tables: ClassVar[Mapping[str, frozenset[str]]] = {
        "sessions": frozenset({"id", "working_dir", "created_at"}),
        "messages": frozenset({"session_id", "role", "content_json", "created_timestamp"}),
    }
    session_tables: ClassVar[Mapping[str, str]] = {
        "sessions": "id = :session",
        "messages": "session_id = :session",
        "schema_version": "1",
    }

    snapshot_indexes = (
        "CREATE INDEX IF NOT EXISTS agentcap_messages_session ON messages(session_id, created_timestamp)",
    )

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        root = env.get("GOOSE_PATH_ROOT")
        if root and Path(root).is_absolute():
            data = Path(root) / "data"
        elif sys.platform == "darwin":
            data = home_of(env) / "Library" / "Application Support" / "Block" / "goose"
        else:
            data = Path(env.get("XDG_DATA_HOME") or home_of(env) / ".local" / "share") / "goose"
        return [data / "sessions" / "sessions.db"]

    def list_sessions(self, connection: sqlite3.Connection) -> list[str]:
        return [row[0] for row in connection.execute("SELECT id FROM sessions ORDER BY created_at, id")]

    def hydrate_session(self, connection: sqlite3.Connection, unit: Unit) -> list[Rollout]:
        session = self.session_row(connection, "sessions", unit.session_id)
        model = as_str(as_dict(_json(session.get("model_config_json"))).get("model_name"))
        builder = _Builder(model)
        for row in connection.execute(
            "SELECT * FROM messages WHERE session_id = ? ORDER BY created_timestamp, id", (unit.session_id,)
        ):
            builder.add(dict(row))
        accumulated = as_int(session.get("accumulated_total_tokens")) is not None
        prefix = "accumulated_" if accumulated else ""
        session_type = as_str(session.get("session_type"))
        return [
            Rollout(
                agent="goose",
                source_kind="goose",
                source_path=str(unit.path.resolve()),
                session_id=unit.session_id or "",
                trace_id=f"goose:{unit.session_id}",
                is_sidechain=session_type == "sub_agent",
                title=as_str(session.get("name")) or as_str(session.get("description")),
                cwd=as_str(session.get("working_dir")),
                model=model,
                provider=as_str(session.get("provider_name")),
                started_at=to_utc(session.get("created_at")),
                ended_at=to_utc(session.get("updated_at")),
                messages=builder.messages,
                usage=Usage(
                    input_tokens=as_int(session.get(prefix + "input_tokens")),
                    output_tokens=as_int(session.get(prefix + "output_tokens")),
                    total_tokens=as_int(session.get(prefix + "total_tokens")),
                ),
                parse_warnings=builder.warnings,
                source_meta={"session_type": session_type, "description": session.get("description")},
            )
        ]


class _Builder:
    def __init__(self, model: str | None) -> None:
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.tool_names: dict[str, str] = {}

    def add(self, row: dict[str, Any]) -> None:
        role = as_str(row.get("role"))
        timestamp = to_utc(row.get("created_timestamp"))
        metadata = as_dict(_json(row.get("metadata_json")))
        if metadata.get("agentVisible") is False:
            return  # shown to the user only, never sent to the model
        items = _json(row.get("content_json"))
        if not isinstance(items, list):
            self.warnings.append(f"message {row.get('id')}: content_json is not a list; skipped")
            return
        texts, thoughts, calls, results = [], [], [], []
        for item in map(as_dict, items):
            kind = as_str(item.get("type"))
            if kind == "text":
                texts.append(as_str(item.get("text")) or "")
            elif kind == "image":
                texts.append(f"[image: {as_str(item.get('mimeType')) or 'unknown'}]")
            elif kind == "thinking":
                thoughts.append(as_str(item.get("thinking")) or "")
            elif kind == "toolRequest":
                calls.append(_tool_call(item))
            elif kind == "toolResponse":
                results.append(_tool_result(item, timestamp))
            elif kind not in _SILENT_ITEMS:
                self.warnings.append(f"message {row.get('id')}: unknown content item {kind!r} skipped")
        for call in calls:
            self.tool_names[call["id"] or ""] = call["function"]["name"]
        for result in results:
            result["name"] = self.tool_names.get(result["tool_call_id"] or "")
        # Tool results answer the previous assistant message, so they come before any user text.
        self.messages.extend(results)
        if role == "assistant":
            if texts or thoughts or calls:
                self.messages.append(
                    make_message(
                        "assistant",
                        join_text(texts),
                        reasoning_content=join_text(thoughts),
                        tool_calls=calls,
                        timestamp=timestamp,
                        model=self.model,
                    )
                )
        elif texts:
            self.messages.append(make_message("user", join_text(texts), timestamp=timestamp))


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    call = as_dict(item.get("toolCall"))
    if call.get("status") == "error":
        # The model produced a call goose could not parse: kept, with the parse error as arguments.
        return make_tool_call(as_str(item.get("id")), "", {"error": call.get("error")})
    value = as_dict(call.get("value"))
    return make_tool_call(as_str(item.get("id")), as_str(value.get("name")), value.get("arguments") or {})


def _tool_result(item: dict[str, Any], timestamp: Any) -> dict[str, Any]:
    result = as_dict(item.get("toolResult"))
    call_id = as_str(item.get("id"))
    if result.get("status") == "error":
        error = result.get("error")
        return make_message(
            "tool",
            error if isinstance(error, str) else to_json(error),
            tool_call_id=call_id,
            timestamp=timestamp,
            is_error=True,
        )
    value = result.get("value")
    # Newer rows wrap the content list as {content, isError}; older rows store the bare list.
    content = value.get("content") if isinstance(value, dict) else value
    is_error = bool(value.get("isError")) if isinstance(value, dict) else False
    texts = [as_str(as_dict(part).get("text")) or "" for part in as_list(content)]
    return make_message(
        "tool", join_text(texts), tool_call_id=call_id, timestamp=timestamp, is_error=is_error
    )
