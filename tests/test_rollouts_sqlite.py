"""opencode, Hermes and goose databases → rollouts, read from a snapshot without ever writing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from rollout_fixtures import (
    build_goose_db,
    build_hermes_db,
    build_opencode_db,
    call,
    message,
    read_rollouts,
    utc,
)


def test_opencode_steps_become_assistant_messages_and_tool_parts_give_results(tmp_path: Path) -> None:
    database = build_opencode_db(tmp_path / "opencode.db")
    main, sub = read_rollouts(database)
    assert main["messages"] == [
        message("user", "<file>NOTES.md contents</file>", timestamp="2026-02-03T09:20:00Z", is_meta=True),
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:20:00Z"),
        message(
            "assistant",
            reasoning_content="Count with wc.",
            model="gpt-x",
            timestamp="2026-02-03T09:20:01Z",
            tool_calls=[call("call_a", "bash", '{"command":"wc -l NOTES.md"}')],
        ),
        message(
            "tool",
            "42 NOTES.md",
            tool_call_id="call_a",
            name="bash",
            timestamp="2026-02-03T09:20:01.600Z",
            is_error=False,
        ),
        message("assistant", "NOTES.md has 42 lines.", model="gpt-x", timestamp="2026-02-03T09:20:01Z"),
    ]
    assert (main["trace_id"], main["title"], main["agent_version"], main["project_path"]) == (
        "opencode:ses_1",
        "Count lines",
        "1.2.0",
        "/home/ana/proj",
    )
    assert main["usage"] == {
        "input_tokens": 800,
        "output_tokens": 40,
        "cache_read_tokens": 10,
        "cache_write_tokens": 0,
        "reasoning_tokens": 5,
        "total_tokens": 850,
        "cost_usd": 0.01,
    }
    assert (main["started_at"], main["ended_at"]) == (
        utc("2026-02-03T09:20:00Z"),
        utc("2026-02-03T09:20:03Z"),
    )
    assert (sub["trace_id"], sub["is_sidechain"], sub["parent_session_id"], sub["root_session_id"]) == (
        "opencode:ses_2",
        True,
        "ses_1",
        "ses_1",
    )


def test_hermes_state_db_sessions_compression_chain_and_subagent(tmp_path: Path) -> None:
    database = build_hermes_db(tmp_path / "state.db")
    first, continued, subtask = read_rollouts(database, format_name="hermes")
    assert first["messages"] == [
        message("system", "You are a helpful agent.", timestamp="2026-02-03T09:40:00Z"),
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:40:01Z"),
        message(
            "assistant",
            reasoning_content="Count them.",
            model="openai/gpt-x",
            timestamp="2026-02-03T09:40:02Z",
            tool_calls=[call("call_a", "terminal", '{"command": "wc -l NOTES.md"}')],
        ),
        message(
            "tool",
            '{"output": "42 NOTES.md", "exit_code": 0}',
            tool_call_id="call_a",
            name="terminal",
            timestamp="2026-02-03T09:40:03Z",
            is_error=False,
        ),
        message(
            "assistant", "NOTES.md has 42 lines.", model="openai/gpt-x", timestamp="2026-02-03T09:40:05Z"
        ),
    ]
    assert (first["trace_id"], first["source_kind"], first["provider"], first["usage"]["cost_usd"]) == (
        "hermes:20260203_094000_c0ffee",
        "hermes_agent",
        "custom",
        0.0123,
    )
    # the child of a compressed session continues it; the grandchild is a real subagent
    assert (continued["is_sidechain"], continued["root_session_id"]) == (False, "20260203_094000_c0ffee")
    assert json.loads(continued["source_meta"])["continues_compressed_parent"] is True
    assert (subtask["is_sidechain"], subtask["parent_session_id"]) == (True, "20260203_094100_beef00")
    assert subtask["first_user_message"] == "Subtask: count words"


def test_goose_tool_responses_in_user_rows_become_tool_messages(tmp_path: Path) -> None:
    database = build_goose_db(tmp_path / "sessions.db")
    row, other = read_rollouts(database)
    assert row["messages"] == [
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:50:01Z"),
        message(
            "assistant",
            "Let me count.",
            model="gpt-x",
            timestamp="2026-02-03T09:50:02Z",
            tool_calls=[call("call_a", "developer__shell", '{"command":"wc -l NOTES.md"}')],
        ),
        message(
            "tool",
            "42 NOTES.md",
            tool_call_id="call_a",
            name="developer__shell",
            timestamp="2026-02-03T09:50:03Z",
            is_error=False,
        ),
        message("assistant", "NOTES.md has 42 lines.", model="gpt-x", timestamp="2026-02-03T09:50:05Z"),
    ]
    assert row["turn_count"] == 1  # the user row holding only a tool response is not a turn
    assert (row["started_at"], row["ended_at"]) == (utc("2026-02-03T09:50:00Z"), utc("2026-02-03T09:50:05Z"))
    assert row["usage"]["total_tokens"] == 730 and row["provider"] == "openai"
    assert other["trace_id"] == "goose:20260203_4" and other["model"] == "gpt-y"


def test_live_wal_database_is_read_consistently_and_never_written(tmp_path: Path) -> None:
    database = build_hermes_db(tmp_path / "state.db")
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE sessions SET title = 'only in the WAL' WHERE id = '20260203_094000_c0ffee'")
    writer.commit()  # committed to the -wal file, not yet checkpointed into the main file
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    rows = read_rollouts(database)
    assert rows[0]["title"] == "only in the WAL"
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    writer.close()


def test_database_of_unknown_shape_is_reported_not_read(tmp_path: Path) -> None:
    database = tmp_path / "other.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
    connection.commit()
    connection.close()
    warnings: list[str] = []
    assert read_rollouts(tmp_path, warnings=warnings) == []
    assert warnings == [f"skipped 1 file(s) that are no known trace format: {database}"]
    assert read_rollouts(database, format_name="goose", warnings=warnings) == []
    assert warnings[-1] == f"{database}: skipped: not a goose database (missing tables or columns)"
