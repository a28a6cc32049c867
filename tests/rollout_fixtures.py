"""Hand-written native traces for the rollouts tests: JSONL written line by line, SQLite built by SQL.

Every fixture tells the same small task ("How many lines are in NOTES.md?" → one shell call → answer),
in each agent's own shape (docs/../shared reference `agent-traces.md`), plus the variants that trip
parsers up.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from factories import make_record, write_run

from exporter.rollouts.arrow_schema import MESSAGE_TYPE, ROLLOUT_SCHEMA, USAGE_TYPE

CLAUDE_SESSION = "7c1d0000-aaaa-4bbb-8ccc-000000000001"
CLAUDE_ENVELOPE = {
    "sessionId": CLAUDE_SESSION,
    "cwd": "/home/ana/proj",
    "version": "2.1.3",
    "gitBranch": "dev",
    "isSidechain": False,
    "userType": "external",
}
CODEX_SESSION = "01a2b3c4-0000-7000-8000-0000000000aa"
PI_SESSION = "3d4e0000-bbbb-4ccc-8ddd-000000000002"


def write_jsonl(path: Path, lines: list[dict[str, Any] | str], *, cut_last: str | None = None) -> Path:
    """Write objects (or raw strings, for garbage) one per line; `cut_last` appends a cut final line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text + (cut_last or ""), encoding="utf-8")
    return path


def claude(kind: str, uuid: str, parent: str | None, ts: str, message: dict[str, Any], **extra: Any) -> dict:
    return {"type": kind, "uuid": uuid, "parentUuid": parent, "timestamp": f"2026-02-03T09:15:{ts}Z"} | (
        CLAUDE_ENVELOPE | extra | {"message": message}
    )


def claude_user(uuid: str, parent: str | None, ts: str, content: Any, **extra: Any) -> dict:
    return claude("user", uuid, parent, ts, {"role": "user", "content": content}, **extra)


def claude_assistant(
    uuid: str, parent: str, ts: str, message_id: str, blocks: list[dict], usage: dict, **extra: Any
) -> dict:
    message = {"id": message_id, "role": "assistant", "model": "claude-x", "content": blocks, "usage": usage}
    return claude("assistant", uuid, parent, ts, message, requestId="req_" + message_id, **extra)


def claude_basic_lines() -> list[dict]:
    """The reference fixture: one response split over two lines (thinking, tool_use), then an answer."""
    return [
        claude_user("q1", None, "00.000", "How many lines are in NOTES.md?"),
        claude_assistant(
            "r1",
            "q1",
            "01.500",
            "msg_a",
            [{"type": "thinking", "thinking": "Use wc.", "signature": "s"}],
            {"input_tokens": 20, "output_tokens": 25, "cache_read_input_tokens": 100},
        ),
        claude_assistant(
            "r2",
            "r1",
            "01.600",
            "msg_a",
            [{"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {"command": "wc -l NOTES.md"}}],
            {"input_tokens": 20, "output_tokens": 25, "cache_read_input_tokens": 100},
        ),
        claude_user(
            "q2",
            "r2",
            "02.000",
            [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "42 NOTES.md"}],
            toolUseResult={"stdout": "42 NOTES.md", "stderr": ""},
        ),
        claude_assistant(
            "r3",
            "q2",
            "03.000",
            "msg_b",
            [{"type": "text", "text": "NOTES.md has 42 lines."}],
            {"input_tokens": 60, "output_tokens": 9},
        ),
    ]


def codex_lines() -> list[dict]:
    """The reference Codex fixture with its event_msg duplicates and an injected environment context."""

    def line(ts: str, kind: str, payload: dict) -> dict:
        return {"timestamp": f"2026-02-03T09:20:{ts}Z", "type": kind, "payload": payload}

    return [
        line(
            "00.000",
            "session_meta",
            {
                "id": CODEX_SESSION,
                "timestamp": "2026-02-03T09:20:00.000Z",
                "cwd": "/home/ana/proj",
                "originator": "codex_cli_rs",
                "cli_version": "0.60.0",
                "source": "cli",
                "model_provider": "openai",
                "git": {
                    "commit_hash": "9f8e7d6",
                    "branch": "dev",
                    "repository_url": "git@example.com:ana/proj.git",
                },
            },
        ),
        line(
            "00.050",
            "turn_context",
            {"cwd": "/home/ana/proj", "approval_policy": "never", "model": "gpt-x-codex"},
        ),
        line(
            "00.060",
            "response_item",
            {
                "type": "message",
                "role": "developer",
                "content": [
                    {
                        "type": "input_text",
                        "text": "<permissions instructions>sandboxed</permissions instructions>",
                    }
                ],
            },
        ),
        line(
            "00.070",
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "<environment_context>\n  <cwd>/home/ana/proj</cwd>\n</environment_context>",
                    }
                ],
            },
        ),
        line(
            "00.100",
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "How many lines are in NOTES.md?"}],
            },
        ),
        line("00.100", "event_msg", {"type": "user_message", "message": "How many lines are in NOTES.md?"}),
        line(
            "01.000",
            "response_item",
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Counting lines"}],
                "encrypted_content": "enc",
            },
        ),
        line("01.000", "event_msg", {"type": "agent_reasoning", "text": "Counting lines"}),
        line(
            "01.200",
            "response_item",
            {
                "type": "function_call",
                "name": "shell",
                "arguments": '{"command":["wc","-l","NOTES.md"]}',
                "call_id": "call_a",
            },
        ),
        line(
            "01.400",
            "response_item",
            {"type": "function_call_output", "call_id": "call_a", "output": "42 NOTES.md"},
        ),
        line(
            "02.000",
            "response_item",
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "NOTES.md has 42 lines."}],
            },
        ),
        line("02.000", "event_msg", {"type": "agent_message", "message": "NOTES.md has 42 lines."}),
        line(
            "02.100",
            "event_msg",
            {
                "type": "token_count",
                "info": {
                    "total_token_usage": {
                        "input_tokens": 900,
                        "cached_input_tokens": 300,
                        "output_tokens": 30,
                        "reasoning_output_tokens": 8,
                        "total_tokens": 930,
                    }
                },
                "rate_limits": None,
            },
        ),
    ]


def pi_lines() -> list[dict]:
    def entry(kind: str, entry_id: str, parent: str | None, ts: str, **fields: Any) -> dict:
        return {
            "type": kind,
            "id": entry_id,
            "parentId": parent,
            "timestamp": f"2026-02-03T09:30:{ts}Z",
        } | fields

    return [
        {
            "type": "session",
            "version": 3,
            "id": PI_SESSION,
            "timestamp": "2026-02-03T09:30:00.000Z",
            "cwd": "/home/ana/proj",
        },
        entry("model_change", "b1000001", None, "00.010", provider="openai", modelId="gpt-x"),
        entry(
            "message",
            "b1000002",
            "b1000001",
            "01.000",
            message={
                "role": "user",
                "content": [{"type": "text", "text": "How many lines are in NOTES.md?"}],
                "timestamp": 1770111001000,
            },
        ),
        entry(
            "message",
            "b1000003",
            "b1000002",
            "02.000",
            message={
                "role": "assistant",
                "content": [
                    {
                        "type": "toolCall",
                        "id": "call_a",
                        "name": "bash",
                        "arguments": {"command": "wc -l NOTES.md"},
                    }
                ],
                "provider": "openai",
                "model": "gpt-x",
                "usage": {"input": 700, "output": 20, "totalTokens": 720, "cost": {"total": 0.001}},
                "stopReason": "toolUse",
                "timestamp": 1770111002000,
            },
        ),
        entry(
            "message",
            "b1000004",
            "b1000003",
            "02.300",
            message={
                "role": "toolResult",
                "toolCallId": "call_a",
                "toolName": "bash",
                "content": [{"type": "text", "text": "42 NOTES.md"}],
                "isError": False,
                "timestamp": 1770111002300,
            },
        ),
        entry(
            "message",
            "b1000005",
            "b1000004",
            "03.000",
            message={
                "role": "assistant",
                "content": [{"type": "text", "text": "NOTES.md has 42 lines."}],
                "provider": "openai",
                "model": "gpt-x",
                "usage": {"input": 740, "output": 8, "totalTokens": 748, "cost": {"total": 0.002}},
                "stopReason": "stop",
                "timestamp": 1770111003000,
            },
        ),
    ]


OPENCODE_SCHEMA = """
CREATE TABLE project (id TEXT PRIMARY KEY, worktree TEXT, vcs TEXT, name TEXT, time_created INTEGER,
                      time_updated INTEGER);
CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT, parent_id TEXT, slug TEXT, directory TEXT,
                      title TEXT, version TEXT, time_created INTEGER, time_updated INTEGER);
CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER, time_updated INTEGER,
                      data TEXT);
CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, session_id TEXT, time_created INTEGER,
                   time_updated INTEGER, data TEXT);
"""


def opencode_session(
    connection: sqlite3.Connection,
    session: str,
    *,
    parent: str | None = None,
    title: str = "Count lines",
    base_ms: int = 1770110400000,
) -> None:
    """One opencode session: user text, then one assistant message spanning two LLM steps."""
    connection.execute(
        "INSERT INTO session VALUES (?,?,?,?,?,?,?,?,?)",
        (session, "prj_1", parent, "calm-heron", "/home/ana/proj", title, "1.2.0", base_ms, base_ms + 3000),
    )
    user, assistant = f"msg_{session}_1", f"msg_{session}_2"
    connection.execute(
        "INSERT INTO message VALUES (?,?,?,?,?)",
        (
            user,
            session,
            base_ms,
            base_ms,
            json.dumps(
                {
                    "role": "user",
                    "time": {"created": base_ms},
                    "agent": "build",
                    "model": {"providerID": "openai", "modelID": "gpt-x"},
                }
            ),
        ),
    )
    connection.execute(
        "INSERT INTO message VALUES (?,?,?,?,?)",
        (
            assistant,
            session,
            base_ms + 1000,
            base_ms + 3000,
            json.dumps(
                {
                    "role": "assistant",
                    "time": {"created": base_ms + 1000, "completed": base_ms + 3000},
                    "parentID": user,
                    "modelID": "gpt-x",
                    "providerID": "openai",
                    "agent": "build",
                    "path": {"cwd": "/home/ana/proj", "root": "/home/ana/proj"},
                    "cost": 0.01,
                    "tokens": {"input": 400, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}},
                    "finish": "stop",
                }
            ),
        ),
    )
    parts = [
        (user, {"type": "text", "text": "How many lines are in NOTES.md?"}),
        (user, {"type": "text", "text": "<file>NOTES.md contents</file>", "synthetic": True}),
        (assistant, {"type": "step-start"}),
        (assistant, {"type": "reasoning", "text": "Count with wc."}),
        (
            assistant,
            {
                "type": "tool",
                "callID": "call_a",
                "tool": "bash",
                "state": {
                    "status": "completed",
                    "input": {"command": "wc -l NOTES.md"},
                    "output": "42 NOTES.md",
                    "title": "wc",
                    "metadata": {},
                    "time": {"start": base_ms + 1500, "end": base_ms + 1600},
                },
            },
        ),
        (
            assistant,
            {
                "type": "step-finish",
                "reason": "tool-calls",
                "cost": 0.004,
                "tokens": {"input": 400, "output": 20, "reasoning": 5, "cache": {"read": 10, "write": 0}},
            },
        ),
        (assistant, {"type": "step-start"}),
        (assistant, {"type": "text", "text": "NOTES.md has 42 lines."}),
        (
            assistant,
            {
                "type": "step-finish",
                "reason": "stop",
                "cost": 0.006,
                "tokens": {"input": 400, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}},
            },
        ),
    ]
    for number, (message, data) in enumerate(parts, 1):
        connection.execute(
            "INSERT INTO part VALUES (?,?,?,?,?,?)",
            (f"prt_{session}_{number:02d}", message, session, base_ms, base_ms, json.dumps(data)),
        )


def build_opencode_db(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(OPENCODE_SCHEMA)
    connection.execute("INSERT INTO project VALUES ('prj_1','/home/ana/proj','git','proj',0,0)")
    opencode_session(connection, "ses_1")
    opencode_session(connection, "ses_2", parent="ses_1", title="Subagent", base_ms=1770110405000)
    connection.commit()
    connection.close()
    return path


HERMES_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, user_id TEXT, model TEXT, model_config TEXT,
    system_prompt TEXT, parent_session_id TEXT, started_at REAL, ended_at REAL, end_reason TEXT,
    message_count INTEGER, tool_call_count INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cache_read_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER, billing_provider TEXT,
    estimated_cost_usd REAL, actual_cost_usd REAL, title TEXT, cwd TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, role TEXT, content TEXT,
    tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, timestamp REAL, token_count INTEGER,
    finish_reason TEXT, reasoning TEXT);
"""


def hermes_session(
    connection: sqlite3.Connection,
    session: str,
    start: float,
    *,
    parent: str | None = None,
    end_reason: str = "user_exit",
    prompt: str = "How many lines are in NOTES.md?",
) -> None:
    connection.execute(
        "INSERT INTO sessions (id,source,model,model_config,system_prompt,parent_session_id,started_at,ended_at,"
        "end_reason,message_count,tool_call_count,input_tokens,output_tokens,cwd,title,estimated_cost_usd)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            session,
            "cli",
            "openai/gpt-x",
            '{"provider":"custom"}',
            "You are a helpful agent.",
            parent,
            start,
            start + 5,
            end_reason,
            4,
            1,
            700,
            30,
            "/home/ana/proj",
            "Count lines",
            0.0123,
        ),
    )
    rows = [
        ("user", prompt, None, None, None, start + 1, None, None),
        (
            "assistant",
            "",
            None,
            json.dumps(
                [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "terminal", "arguments": '{"command": "wc -l NOTES.md"}'},
                    }
                ]
            ),
            None,
            start + 2,
            "tool_calls",
            "Count them.",
        ),
        (
            "tool",
            '{"output": "42 NOTES.md", "exit_code": 0}',
            "call_a",
            None,
            "terminal",
            start + 3,
            None,
            None,
        ),
        ("assistant", "NOTES.md has 42 lines.", None, None, None, start + 5, "stop", None),
    ]
    connection.executemany(
        "INSERT INTO messages (session_id,role,content,tool_call_id,tool_calls,tool_name,timestamp,finish_reason,"
        "reasoning) VALUES (?,?,?,?,?,?,?,?,?)",
        [(session, *row) for row in rows],
    )


def build_hermes_db(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(HERMES_SCHEMA)
    hermes_session(connection, "20260203_094000_c0ffee", 1770111600.0, end_reason="compression")
    hermes_session(
        connection,
        "20260203_094100_beef00",
        1770111660.0,
        parent="20260203_094000_c0ffee",
        prompt="And in README.md?",
    )
    hermes_session(
        connection,
        "20260203_094200_cafe00",
        1770111720.0,
        parent="20260203_094100_beef00",
        prompt="Subtask: count words",
    )
    connection.commit()
    connection.close()
    return path


GOOSE_SCHEMA = """
CREATE TABLE schema_version (version INTEGER);
CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT, description TEXT, session_type TEXT, working_dir TEXT,
    created_at TEXT, updated_at TEXT, extension_data TEXT, total_tokens INTEGER, input_tokens INTEGER,
    output_tokens INTEGER, accumulated_total_tokens INTEGER, accumulated_input_tokens INTEGER,
    accumulated_output_tokens INTEGER, recipe_json TEXT, provider_name TEXT, model_config_json TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, session_id TEXT, role TEXT,
    content_json TEXT, created_timestamp INTEGER, timestamp INTEGER, tokens INTEGER, metadata_json TEXT);
"""
_VISIBLE = '{"userVisible":true,"agentVisible":true}'


def goose_session(connection: sqlite3.Connection, session: str, created: int = 1770112200) -> None:
    """One goose session: a tool request, its response in a user row, a UI-only row, the answer."""
    stamp = datetime.fromtimestamp(created, UTC)
    connection.execute(
        "INSERT INTO sessions (id,name,session_type,working_dir,created_at,updated_at,extension_data,"
        "accumulated_total_tokens,accumulated_input_tokens,accumulated_output_tokens,provider_name,"
        "model_config_json) VALUES (?,'Count lines','user','/home/ana/proj',?,?,'{}',730,700,30,'openai',?)",
        (
            session,
            f"{stamp:%Y-%m-%d %H:%M:%S}",
            f"{stamp + timedelta(seconds=5):%Y-%m-%d %H:%M:%S}",
            '{"model_name":"gpt-x"}',
        ),
    )
    request = {
        "type": "toolRequest",
        "id": "call_a",
        "toolCall": {
            "status": "success",
            "value": {"name": "developer__shell", "arguments": {"command": "wc -l NOTES.md"}},
        },
    }
    response = {
        "type": "toolResponse",
        "id": "call_a",
        "toolResult": {
            "status": "success",
            "value": {"content": [{"type": "text", "text": "42 NOTES.md"}], "isError": False},
        },
    }
    rows = [
        ("user", [{"type": "text", "text": "How many lines are in NOTES.md?"}], 1, _VISIBLE),
        ("assistant", [{"type": "text", "text": "Let me count."}, request], 2, _VISIBLE),
        ("user", [response], 3, _VISIBLE),
        ("user", [{"type": "text", "text": "ui-only note"}], 4, '{"userVisible":true,"agentVisible":false}'),
        ("assistant", [{"type": "text", "text": "NOTES.md has 42 lines."}], 5, _VISIBLE),
    ]
    connection.executemany(
        "INSERT INTO messages (session_id,role,content_json,created_timestamp,metadata_json) VALUES (?,?,?,?,?)",
        [
            (session, role, json.dumps(content), created + offset, meta)
            for role, content, offset, meta in rows
        ],
    )


def build_goose_db(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(GOOSE_SCHEMA)
    connection.execute("INSERT INTO schema_version VALUES (7)")
    goose_session(connection, "20260203_3")
    connection.execute(
        "INSERT INTO sessions (id,name,session_type,working_dir,created_at,updated_at,extension_data,"
        "provider_name,model_config_json) VALUES ('20260203_4','Other','user','/tmp','2026-02-03 10:00:00',"
        "'2026-02-03 10:00:01','{}','openai','{\"model_name\":\"gpt-y\"}')"
    )
    connection.execute(
        "INSERT INTO messages (session_id,role,content_json,created_timestamp,metadata_json) VALUES (?,?,?,?,?)",
        ("20260203_4", "user", json.dumps([{"type": "text", "text": "other session"}]), 1770112800, _VISIBLE),
    )
    connection.commit()
    connection.close()
    return path


def read_rollouts(*sources: Path, format_name: str = "auto", warnings: list[str] | None = None) -> list[dict]:
    """Manifest + hydrate, as `agentcap rollouts` does; warnings land in `warnings`."""
    from exporter.rollouts.hydrate import iter_rows
    from exporter.rollouts.manifest import build_manifest
    from exporter.rollouts.sqlite_source import SnapshotStore

    collected = warnings if warnings is not None else []
    with SnapshotStore() as snapshots:
        units = build_manifest(list(sources), format_name, snapshots=snapshots, warn=collected.append)
        return list(iter_rows(units, warn=collected.append))


def utc(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def message(role: str, content: str = "", **fields: Any) -> dict[str, Any]:
    """The expected message dict (every key present), for exact assertions."""
    from exporter.rollouts.rollout import make_message

    if "timestamp" in fields and isinstance(fields["timestamp"], str):
        fields["timestamp"] = utc(fields["timestamp"])
    return make_message(role, content, **fields)


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# ---------------------------------------------------------------- our own captures, and every format at once

RUN = "demo-20261121T081500-a1b2c3"


def make_capture_run(runs: Path) -> Path:
    """task-1: two answered calls and a retry whose upstream was unreachable; task-2: one call."""
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    second = [*history, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}]
    records = [
        make_record(seq=1, task_id="task-1", messages=history, reply="hello"),
        make_record(seq=2, task_id="task-1", stream=True, reply="second-answer", messages=second),
        make_record(
            seq=3,
            task_id="task-1",
            status_code=0,
            error={"kind": "upstream_unreachable", "message": "x"},
            messages=[
                *second,
                {"role": "assistant", "content": "second-answer"},
                {"role": "user", "content": "more"},
            ],
        ),
        make_record(
            seq=4, task_id="task-2", messages=[{"role": "user", "content": "other task"}], reply="ok"
        ),
    ]
    return write_run(runs, RUN, records)


def build_every_format(root: Path) -> None:
    write_jsonl(
        root / "claude" / "-home-ana-proj" / "7c1d0000-aaaa-4bbb-8ccc-000000000001.jsonl",
        claude_basic_lines(),
    )
    write_jsonl(root / "codex" / "rollout-2026-02-03T09-20-00-x.jsonl", codex_lines())
    write_jsonl(root / "pi" / "--home-ana-proj--" / "2026_pi.jsonl", pi_lines())
    (root / "db").mkdir()
    build_opencode_db(root / "db" / "opencode.db")
    build_hermes_db(root / "db" / "state.db")
    build_goose_db(root / "db" / "sessions.db")
    make_capture_run(root / "runs")


def fixed_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a table of the fixed rollout schema, after checking every key is exactly the schema's.

    `pa.Table.from_pylist(rows, schema=...)` alone proves little: pyarrow silently drops keys the
    schema does not have (top level and inside structs) and fills missing ones with nulls.
    """
    message_keys = [field.name for field in MESSAGE_TYPE]
    call_keys = [field.name for field in MESSAGE_TYPE.field("tool_calls").type.value_type]
    usage_keys = [field.name for field in USAGE_TYPE]
    for row in rows:
        assert list(row) == ROLLOUT_SCHEMA.names, set(row) ^ set(ROLLOUT_SCHEMA.names)
        assert list(row["usage"]) == usage_keys, row["usage"]
        for message in row["messages"]:
            assert list(message) == message_keys, set(message) ^ set(message_keys)
            assert all(list(call) == call_keys for call in message["tool_calls"]), message["tool_calls"]
    return pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA)
