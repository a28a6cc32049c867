"""Hermes Agent: `${HERMES_HOME:-~/.hermes}/state.db` is canonical (the `sessions/` files are indexes).

Messages are already OpenAI chat messages; the traps are the evolving schema (columns are introspected),
`active` flags on newer versions, multimodal content stored as "\\x00json:" + JSON, the system prompt
kept on the session (or by hash in `system_prompts`), and compression chains: a session whose parent
ended with `end_reason='compression'` continues that parent (not a sidechain).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from exporter.core.values import as_dict, as_float, as_int, as_list, as_str, join_text
from exporter.rollouts.base import SqliteFormat, Unit, home_of
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc
from exporter.rollouts.sqlite_source import chain_root, table_columns

_MULTIMODAL_PREFIX = "\x00json:"


class HermesFormat(SqliteFormat):
    name = "hermes"
    agent = "hermes"
    source_kind = "hermes_agent"
    file_pattern = "state.db"
    required_tables: ClassVar[Mapping[str, frozenset[str]]] = {
        "sessions": frozenset({"id", "model", "parent_session_id", "started_at"}),
        "messages": frozenset({"session_id", "role", "content", "tool_call_id", "tool_calls", "timestamp"}),
    }
    session_tables: ClassVar[Mapping[str, str]] = {
        "sessions": "id = :session",
        "messages": "session_id = :session",
        "system_prompts": "hash = (SELECT system_prompt_hash FROM sessions WHERE id = :session)",
    }

    snapshot_indexes = (
        "CREATE INDEX IF NOT EXISTS agentcap_messages_session ON messages(session_id, timestamp)",
    )

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        return [Path(env.get("HERMES_HOME") or home_of(env) / ".hermes") / "state.db"]

    def list_sessions(self, connection: sqlite3.Connection) -> list[str]:
        return [row[0] for row in connection.execute("SELECT id FROM sessions ORDER BY started_at, id")]

    def hydrate_session(self, connection: sqlite3.Connection, unit: Unit) -> list[Rollout]:
        row = self.session_row(connection, "sessions", unit.session_id)
        message_columns = table_columns(connection, "messages")
        active = " AND active = 1" if "active" in message_columns else ""
        messages: list[dict[str, Any]] = []
        system_prompt = _system_prompt(connection, row)
        if system_prompt:
            messages.append(make_message("system", system_prompt, timestamp=to_utc(row.get("started_at"))))
        model = as_str(row.get("model"))
        for message in connection.execute(
            f"SELECT * FROM messages WHERE session_id = ?{active} ORDER BY timestamp, id", (unit.session_id,)
        ):
            messages.append(_message(dict(message), model))
        parent_id = as_str(row.get("parent_session_id"))
        parent = _session(connection, parent_id)
        model_config = _json(row.get("model_config"))
        return [
            Rollout(
                agent="hermes",
                source_kind="hermes_agent",
                source_path=str(unit.path.resolve()),
                session_id=unit.session_id or "",
                trace_id=f"hermes:{unit.session_id}",
                root_session_id=chain_root(
                    connection, "sessions", "parent_session_id", unit.session_id or ""
                ),
                parent_session_id=parent_id,
                is_sidechain=parent is not None and parent.get("end_reason") != "compression",
                title=as_str(row.get("title")),
                cwd=as_str(row.get("cwd")),
                git_branch=as_str(row.get("git_branch")),
                model=model,
                provider=as_str(row.get("billing_provider")) or as_str(as_dict(model_config).get("provider")),
                started_at=to_utc(row.get("started_at")),
                ended_at=to_utc(row.get("ended_at")),
                messages=messages,
                usage=Usage(
                    input_tokens=as_int(row.get("input_tokens")),
                    output_tokens=as_int(row.get("output_tokens")),
                    cache_read_tokens=as_int(row.get("cache_read_tokens")),
                    cache_write_tokens=as_int(row.get("cache_write_tokens")),
                    reasoning_tokens=as_int(row.get("reasoning_tokens")),
                    cost_usd=as_float(row.get("actual_cost_usd")) or as_float(row.get("estimated_cost_usd")),
                ),
                source_meta={
                    "source": row.get("source"),
                    "end_reason": row.get("end_reason"),
                    "continues_compressed_parent": parent is not None
                    and parent.get("end_reason") == "compression",
                },
            )
        ]


def _session(connection: sqlite3.Connection, session_id: str | None) -> dict[str, Any] | None:
    if session_id is None:
        return None
    found = connection.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return dict(found) if found is not None else None


def _system_prompt(connection: sqlite3.Connection, row: dict[str, Any]) -> str | None:
    text = as_str(row.get("system_prompt"))
    if text or not row.get("system_prompt_hash"):
        return text
    try:
        found = connection.execute(
            "SELECT * FROM system_prompts WHERE hash = ?", (row["system_prompt_hash"],)
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if found is None:
        return None
    values = dict(found)
    return as_str(values.get("content")) or as_str(values.get("prompt")) or as_str(values.get("text"))


def _json(raw: Any) -> Any:
    if not isinstance(raw, str | bytes):
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def _content(raw: Any) -> str:
    if not isinstance(raw, str):
        return "" if raw is None else str(raw)
    if not raw.startswith(_MULTIMODAL_PREFIX):
        return raw
    parts = []
    for part in as_list(_json(raw[len(_MULTIMODAL_PREFIX) :])):
        part = as_dict(part)
        if part.get("type") == "text":
            parts.append(as_str(part.get("text")) or "")
        elif part.get("type") in ("image_url", "image", "input_image"):
            parts.append("[image]")
    return join_text(parts)


def _message(row: dict[str, Any], session_model: str | None) -> dict[str, Any]:
    role = as_str(row.get("role")) or "user"
    content = _content(row.get("content"))
    calls = [
        make_tool_call(as_str(call.get("id")), as_str(function.get("name")), function.get("arguments"))
        for call in map(as_dict, as_list(_json(row.get("tool_calls"))))
        for function in [as_dict(call.get("function"))]
    ]
    reasoning = as_str(row.get("reasoning_content")) or as_str(row.get("reasoning"))
    return make_message(
        role,
        content,
        reasoning_content=reasoning,
        tool_calls=calls,
        tool_call_id=as_str(row.get("tool_call_id")),
        name=as_str(row.get("tool_name")),
        timestamp=to_utc(row.get("timestamp")),
        model=session_model if role == "assistant" else None,
        is_error=_tool_failed(content) if role == "tool" else None,
    )


def _tool_failed(content: str) -> bool | None:
    """Hermes tools answer JSON like {"output": ..., "exit_code": N} or {"error": ...}."""
    if not content.startswith("{"):
        return None
    decoded = as_dict(_json(content))
    if decoded.get("error"):
        return True
    exit_code = as_int(decoded.get("exit_code"))
    return None if exit_code is None else exit_code != 0
