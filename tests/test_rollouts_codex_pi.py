"""Codex and pi sessions → rollouts (the JSONL formats besides Claude Code)."""

from __future__ import annotations

import json
from pathlib import Path

from rollout_fixtures import (
    CODEX_SESSION,
    PI_SESSION,
    call,
    codex_lines,
    message,
    pi_lines,
    read_rollouts,
    utc,
    write_jsonl,
)

CODEX_FILE = f"sessions/2026/02/03/rollout-2026-02-03T09-20-00-{CODEX_SESSION}.jsonl"
PI_FILE = f"--home-ana-proj--/2026-02-03T09-30-00-000Z_{PI_SESSION}.jsonl"


def test_codex_reference_session_exact_messages(tmp_path: Path) -> None:
    write_jsonl(tmp_path / CODEX_FILE, codex_lines())
    [row] = read_rollouts(tmp_path, format_name="codex")
    assert row["messages"] == [
        message(
            "system",
            "<permissions instructions>sandboxed</permissions instructions>",
            timestamp="2026-02-03T09:20:00.060Z",
            is_meta=True,
        ),
        message(
            "user",
            "<environment_context>\n  <cwd>/home/ana/proj</cwd>\n</environment_context>",
            timestamp="2026-02-03T09:20:00.070Z",
            is_meta=True,
        ),
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:20:00.100Z"),
        message(
            "assistant",
            reasoning_content="Counting lines",
            model="gpt-x-codex",
            tool_calls=[call("call_a", "shell", '{"command":["wc","-l","NOTES.md"]}')],
            timestamp="2026-02-03T09:20:01.200Z",
        ),
        message(
            "tool", "42 NOTES.md", tool_call_id="call_a", name="shell", timestamp="2026-02-03T09:20:01.400Z"
        ),
        message("assistant", "NOTES.md has 42 lines.", model="gpt-x-codex", timestamp="2026-02-03T09:20:02Z"),
    ]
    # DataDesigner: branch read from a flat key (None), reasoning twice, environment context as a turn.
    assert row["git_branch"] == "dev"
    assert sum(1 for m in row["messages"] if m["reasoning_content"]) == 1
    assert row["turn_count"] == 1 and row["first_user_message"] == "How many lines are in NOTES.md?"
    assert (row["trace_id"], row["model"], row["provider"], row["agent_version"]) == (
        f"codex:{CODEX_SESSION}",
        "gpt-x-codex",
        "openai",
        "0.60.0",
    )
    assert row["usage"] == {
        "input_tokens": 600,
        "output_tokens": 30,
        "cache_read_tokens": 300,
        "cache_write_tokens": None,
        "reasoning_tokens": 8,
        "total_tokens": 930,
        "cost_usd": None,
    }
    assert row["started_at"] == utc("2026-02-03T09:20:00Z") and row["ended_at"] == utc("2026-02-03T09:20:02Z")
    meta = json.loads(row["source_meta"])
    assert (meta["git_commit"], meta["git_remote"]) == ("9f8e7d6", "git@example.com:ana/proj.git")


def test_codex_variants_custom_tool_compacted_unknown_and_old_files(tmp_path: Path) -> None:
    lines = [
        *codex_lines()[:5],
        {
            "timestamp": "2026-02-03T09:20:01Z",
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call",
                "call_id": "c2",
                "name": "apply_patch",
                "input": "*** Begin Patch",
            },
        },
        {
            "timestamp": "2026-02-03T09:20:01Z",
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call_output",
                "call_id": "c2",
                "output": {"content": "failed", "success": False},
            },
        },
        {"timestamp": "2026-02-03T09:20:02Z", "type": "compacted", "payload": {"message": "summary"}},
        {
            "timestamp": "2026-02-03T09:20:02Z",
            "type": "event_msg",
            "payload": {"type": "token_count", "info": None},
        },
        {"timestamp": "2026-02-03T09:20:02Z", "type": "mystery_item", "payload": {}},
    ]
    write_jsonl(tmp_path / "rollout-a.jsonl", lines)
    old = [
        {"id": "old-1", "timestamp": "2025-05-01T10:00:00Z", "instructions": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        {"record_type": "state"},
    ]
    write_jsonl(tmp_path / "rollout-old.jsonl", old)
    new, legacy = read_rollouts(tmp_path, format_name="codex")
    assert new["messages"][-2]["tool_calls"] == [call("c2", "apply_patch", '{"input":"*** Begin Patch"}')]
    assert (new["messages"][-1]["content"], new["messages"][-1]["is_error"]) == ("failed", True)
    assert new["tool_error_count"] == 1
    assert new["parse_warnings"] == ["line 10: unknown item type 'mystery_item' skipped"]
    assert json.loads(new["source_meta"])["compaction_count"] == 1
    assert [(m["role"], m["content"]) for m in legacy["messages"]] == [
        ("system", "Be terse."),
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    assert legacy["trace_id"] == "codex:old-1" and legacy["git_branch"] is None


def test_codex_cut_last_line_is_partial(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "rollout-x.jsonl", codex_lines(), cut_last='{"timestamp":"2026-02-03T09:21:00Z","ty'
    )
    [row] = read_rollouts(tmp_path)
    assert row["is_partial"] is True and row["message_count"] == 6


def test_pi_reference_session_exact_messages(tmp_path: Path) -> None:
    write_jsonl(tmp_path / PI_FILE, pi_lines())
    [row] = read_rollouts(tmp_path, format_name="pi")
    assert row["messages"] == [
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:30:01Z"),
        message(
            "assistant",
            tool_calls=[call("call_a", "bash", '{"command":"wc -l NOTES.md"}')],
            model="gpt-x",
            timestamp="2026-02-03T09:30:02Z",
        ),
        message(
            "tool",
            "42 NOTES.md",
            tool_call_id="call_a",
            name="bash",
            timestamp="2026-02-03T09:30:02.300Z",
            is_error=False,
        ),
        message("assistant", "NOTES.md has 42 lines.", model="gpt-x", timestamp="2026-02-03T09:30:03Z"),
    ]
    assert (row["trace_id"], row["source_kind"], row["provider"], row["cwd"]) == (
        f"pi:{PI_SESSION}",
        "pi_coding_agent",
        "openai",
        "/home/ana/proj",
    )
    assert row["usage"]["input_tokens"] == 1440 and row["usage"]["cost_usd"] == 0.003


def test_pi_tree_follows_the_last_entry_branch(tmp_path: Path) -> None:
    lines = pi_lines()
    # a branch off the first user message: the user went back and asked again; it is the last entry
    retry = {
        "type": "message",
        "id": "c2000001",
        "parentId": "b1000002",
        "timestamp": "2026-02-03T09:31:00Z",
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": "42 (second try)"}],
            "model": "gpt-x",
            "usage": {"input": 5, "output": 5},
            "timestamp": 1770111060000,
        },
    }
    label = {
        "type": "session_info",
        "id": "c2000002",
        "parentId": "c2000001",
        "timestamp": "2026-02-03T09:31:01Z",
        "name": "Count lines",
    }
    write_jsonl(tmp_path / PI_FILE, [*lines, retry, label])
    [row] = read_rollouts(tmp_path)
    assert [m["content"] for m in row["messages"]] == ["How many lines are in NOTES.md?", "42 (second try)"]
    assert row["title"] == "Count lines" and row["branch_policy"] == "active_path"
    assert json.loads(row["source_meta"])["branch_points"] == 1
    assert row["usage"]["input_tokens"] == 5  # only the calls on the active branch


def test_pi_without_header_is_skipped_whole(tmp_path: Path) -> None:
    write_jsonl(tmp_path / PI_FILE, pi_lines()[1:])
    warnings: list[str] = []
    assert read_rollouts(tmp_path, format_name="pi", warnings=warnings) == []
    assert warnings == [f"{tmp_path / PI_FILE}: skipped: no session header line"]
