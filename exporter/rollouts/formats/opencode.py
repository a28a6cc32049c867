"""opencode: `${XDG_DATA_HOME:-~/.local/share}/opencode/opencode.db` (SQLite, times in epoch ms).

Traps handled here: message rows hold no text (it is in `part` rows); one assistant message spans
several LLM calls (`step-start` … `step-finish`), each becoming one assistant message; a `tool` part is
both the assistant's tool call and the tool's result (`state.output` / `state.error`); subagents are
child sessions (`parent_id`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from exporter.core.values import as_dict, as_float, as_int, as_str, join_text, to_json
from exporter.rollouts.base import SqliteFormat, Unit, home_of
from exporter.rollouts.rollout import Rollout, Usage, make_message, make_tool_call, to_utc
from exporter.rollouts.sqlite_source import chain_root

_KNOWN_PARTS = frozenset(
    {
        "text",
        "reasoning",
        "tool",
        "step-start",
        "step-finish",
        "file",
        "patch",
        "subtask",
        "compaction",
        "snapshot",
        "agent",
        "retry",
    }
)


def _decode(raw: Any) -> dict[str, Any]:
    try:
        return as_dict(msgspec.json.decode(raw)) if raw is not None else {}
    except (msgspec.DecodeError, TypeError):
        return {}


class OpencodeFormat(SqliteFormat):
    name = "opencode"
    agent = "opencode"
    source_kind = "opencode"
    file_pattern = "opencode*.db"
    required_tables: ClassVar[Mapping[str, frozenset[str]]] = {
        "session": frozenset({"id", "parent_id", "directory", "title", "time_created"}),
        "message": frozenset({"id", "session_id", "time_created", "data"}),
        "part": frozenset({"id", "message_id", "data"}),
    }
    session_tables: ClassVar[Mapping[str, str]] = {
        "project": "id = (SELECT project_id FROM session WHERE id = :session)",
        "session": "id = :session",
        "message": "session_id = :session",
        "part": "message_id IN (SELECT id FROM message WHERE session_id = :session)",
    }

    snapshot_indexes = (
        "CREATE INDEX IF NOT EXISTS agentcap_message_session ON message(session_id, time_created)",
        "CREATE INDEX IF NOT EXISTS agentcap_part_message ON part(message_id)",
    )

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        data = Path(env.get("XDG_DATA_HOME") or home_of(env) / ".local" / "share")
        directory = data / "opencode"
        return sorted(directory.glob("opencode*.db")) if directory.is_dir() else [directory / "opencode.db"]

    def list_sessions(self, connection: sqlite3.Connection) -> list[str]:
        return [row[0] for row in connection.execute("SELECT id FROM session ORDER BY time_created, id")]

    def hydrate_session(self, connection: sqlite3.Connection, unit: Unit) -> list[Rollout]:
        session = self.session_row(connection, "session", unit.session_id)
        project: dict[str, Any] = {}
        if session.get("project_id") is not None and _has_table(connection, "project"):
            row = connection.execute(
                "SELECT * FROM project WHERE id = ?", (session["project_id"],)
            ).fetchone()
            project = dict(row) if row is not None else {}
        parts_by_message: dict[str, list[dict[str, Any]]] = {}
        for row in connection.execute(
            "SELECT part.message_id, part.data FROM part JOIN message ON message.id = part.message_id "
            "WHERE message.session_id = ? ORDER BY part.id",
            (unit.session_id,),
        ):
            parts_by_message.setdefault(row[0], []).append(_decode(row[1]))
        builder = _Builder()
        for row in connection.execute(
            "SELECT id, time_created, data FROM message WHERE session_id = ? ORDER BY time_created, id",
            (unit.session_id,),
        ):
            builder.add(_decode(row["data"]), row["time_created"], parts_by_message.get(row["id"], []))
        parent_id = as_str(session.get("parent_id"))
        return [
            Rollout(
                agent="opencode",
                source_kind="opencode",
                source_path=str(unit.path.resolve()),
                session_id=unit.session_id or "",
                trace_id=f"opencode:{unit.session_id}",
                root_session_id=chain_root(connection, "session", "parent_id", unit.session_id or ""),
                parent_session_id=parent_id,
                is_sidechain=parent_id is not None,
                agent_version=as_str(session.get("version")),
                title=as_str(session.get("title")),
                cwd=as_str(session.get("directory")),
                project_path=as_str(project.get("worktree")),
                provider=builder.provider,
                started_at=to_utc(session.get("time_created")),
                ended_at=to_utc(session.get("time_updated")),
                messages=builder.messages,
                usage=builder.usage,
                parse_warnings=builder.warnings,
                source_meta={
                    "slug": session.get("slug"),
                    "agents": builder.agents,
                    "errors": builder.errors,
                },
            )
        ]


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    return (
        connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        is not None
    )


class _Builder:
    """Turns opencode's message+parts rows into OpenAI-style messages, one assistant per LLM step."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage()
        self.provider: str | None = None
        self.warnings: list[str] = []
        self.agents: list[str] = []
        self.errors: list[str] = []

    def add(self, data: dict[str, Any], created: Any, parts: list[dict[str, Any]]) -> None:
        role = data.get("role")
        timestamp = to_utc(as_dict(data.get("time")).get("created") or created)
        agent = as_str(data.get("agent"))
        if agent and agent not in self.agents:
            self.agents.append(agent)
        if role == "user":
            self._user(parts, timestamp)
        elif role == "assistant":
            self._assistant(data, parts, timestamp)
        else:
            self.warnings.append(f"message with unknown role {role!r} skipped")

    def _user(self, parts: list[dict[str, Any]], timestamp: Any) -> None:
        typed: list[str] = []
        injected: list[str] = []
        for part in parts:
            if part.get("type") == "text" and not part.get("ignored"):
                (injected if part.get("synthetic") else typed).append(as_str(part.get("text")) or "")
            elif part.get("type") == "file":
                typed.append(
                    f"[file: {as_str(part.get('filename')) or as_str(part.get('url')) or 'unknown'}]"
                )
        if injected:
            self.messages.append(make_message("user", join_text(injected), timestamp=timestamp, is_meta=True))
        if typed:
            self.messages.append(make_message("user", join_text(typed), timestamp=timestamp))

    def _assistant(self, data: dict[str, Any], parts: list[dict[str, Any]], timestamp: Any) -> None:
        model = as_str(data.get("modelID"))
        self.provider = as_str(data.get("providerID")) or self.provider
        current: dict[str, Any] | None = None
        results: list[dict[str, Any]] = []
        step_usage = Usage()
        saw_step_finish = False

        def close_step() -> None:
            nonlocal current, results
            if current is not None:
                self.messages.append(current)
                self.messages.extend(results)
            current, results = None, []

        for part in parts:
            kind = as_str(part.get("type"))
            if kind == "step-start":
                close_step()
                continue
            if kind == "step-finish":
                saw_step_finish = True
                step_usage.add(_tokens(part))
                close_step()
                continue
            if kind not in ("text", "reasoning", "tool"):
                if kind not in _KNOWN_PARTS:
                    self.warnings.append(f"unknown part type {kind!r} skipped")
                continue
            if current is None:
                current = make_message("assistant", timestamp=timestamp, model=model)
            if kind == "text" and not part.get("ignored"):
                current["content"] = join_text([current["content"], as_str(part.get("text")) or ""])
            elif kind == "reasoning":
                current["reasoning_content"] = (
                    join_text([current["reasoning_content"] or "", as_str(part.get("text")) or ""]) or None
                )
            elif kind == "tool":
                results.extend(self._tool(current, part))
        close_step()
        error = as_dict(data.get("error"))
        if error:  # aborted or failed call: kept as metadata, the messages hold what was produced
            self.errors.append(
                as_str(as_dict(error.get("data")).get("message")) or as_str(error.get("name")) or ""
            )
        self.usage.add(step_usage if saw_step_finish else _tokens(data))

    def _tool(self, current: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
        state = as_dict(part.get("state"))
        call_id, name = as_str(part.get("callID")), as_str(part.get("tool"))
        current["tool_calls"].append(make_tool_call(call_id, name, state.get("input") or {}))
        status = state.get("status")
        if status not in ("completed", "error"):
            return []  # pending/running: the call never returned
        output = state.get("output") if status == "completed" else state.get("error")
        text = output if isinstance(output, str) else ("" if output is None else to_json(output))
        end = to_utc(as_dict(state.get("time")).get("end"))
        return [
            make_message(
                "tool", text, tool_call_id=call_id, name=name, timestamp=end, is_error=status == "error"
            )
        ]


def _tokens(holder: dict[str, Any]) -> Usage:
    tokens = as_dict(holder.get("tokens"))
    cache = as_dict(tokens.get("cache"))
    return Usage(
        input_tokens=as_int(tokens.get("input")),
        output_tokens=as_int(tokens.get("output")),
        reasoning_tokens=as_int(tokens.get("reasoning")),
        cache_read_tokens=as_int(cache.get("read")),
        cache_write_tokens=as_int(cache.get("write")),
        cost_usd=as_float(holder.get("cost")),
    )
