"""Claude Code sessions → rollouts: split responses, the parentUuid tree, subagents, compaction, damage."""

from __future__ import annotations

import json
from pathlib import Path

from rollout_fixtures import (
    CLAUDE_ENVELOPE,
    CLAUDE_SESSION,
    call,
    claude,
    claude_assistant,
    claude_basic_lines,
    claude_user,
    message,
    read_rollouts,
    utc,
    write_jsonl,
)

PROJECT = "-home-ana-proj"


def session_file(root: Path, lines: list, name: str = CLAUDE_SESSION, **kwargs) -> Path:
    return write_jsonl(root / PROJECT / f"{name}.jsonl", lines, **kwargs)


def test_reference_session_becomes_one_exact_row(tmp_path: Path) -> None:
    session_file(tmp_path, claude_basic_lines())
    [row] = read_rollouts(tmp_path, format_name="claude_code")

    assert row["messages"] == [
        message("user", "How many lines are in NOTES.md?", timestamp="2026-02-03T09:15:00Z"),
        message(
            "assistant",
            reasoning_content="Use wc.",
            # Claude tool input is kept byte for byte as the file stored it (the fixture used json.dumps)
            tool_calls=[call("toolu_a", "Bash", '{"command": "wc -l NOTES.md"}')],
            timestamp="2026-02-03T09:15:01.500Z",
            model="claude-x",
        ),
        message(
            "tool",
            "42 NOTES.md",
            tool_call_id="toolu_a",
            name="Bash",
            timestamp="2026-02-03T09:15:02Z",
            is_error=False,
        ),
        message("assistant", "NOTES.md has 42 lines.", timestamp="2026-02-03T09:15:03Z", model="claude-x"),
    ]
    assert {k: v for k, v in row.items() if k not in ("messages", "source_meta", "source_path")} == {
        "trace_id": f"claude_code:{CLAUDE_SESSION}",
        "agent": "claude_code",
        "agent_version": "2.1.3",
        "source_kind": "claude_code",
        "session_id": CLAUDE_SESSION,
        "root_session_id": CLAUDE_SESSION,
        "parent_session_id": None,
        "agent_id": None,
        "is_sidechain": False,
        "title": None,
        "cwd": "/home/ana/proj",
        "project_path": "/home/ana/proj",
        "git_branch": "dev",
        "model": "claude-x",
        "models": ["claude-x"],
        "provider": "anthropic",
        "started_at": utc("2026-02-03T09:15:00Z"),
        "ended_at": utc("2026-02-03T09:15:03Z"),
        "message_count": 4,
        "turn_count": 1,
        "tool_call_count": 1,
        "tool_error_count": 0,
        "first_user_message": "How many lines are in NOTES.md?",
        "final_assistant_message": "NOTES.md has 42 lines.",
        # msg_a's usage appears on both of its lines and is counted once: 20+60 in, 25+9 out.
        "usage": {
            "input_tokens": 80,
            "output_tokens": 34,
            "cache_read_tokens": 100,
            "cache_write_tokens": None,
            "reasoning_tokens": None,
            "total_tokens": 214,
            "cost_usd": None,
        },
        "branch_policy": "active_path",
        "is_partial": False,
        "parse_warnings": [],
    }
    assert row["source_path"] == str((tmp_path / PROJECT / f"{CLAUDE_SESSION}.jsonl").resolve())
    assert json.loads(row["source_meta"])["has_branches"] is False


def test_split_response_with_tool_results_interleaved_is_one_assistant_message(tmp_path: Path) -> None:
    """DataDesigner keeps every line of a split response as its own assistant message (2.4x too many)."""
    usage = {"input_tokens": 10, "output_tokens": 50}
    session_file(
        tmp_path,
        [
            claude_user("q1", None, "00.000", "Read both files"),
            claude_assistant(
                "a1", "q1", "01.000", "msg_p", [{"type": "text", "text": "Reading both."}], usage
            ),
            claude_assistant(
                "a2",
                "a1",
                "01.100",
                "msg_p",
                [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a"}}],
                usage,
            ),
            claude_user("u1", "a2", "01.200", [{"type": "tool_result", "tool_use_id": "t1", "content": "A"}]),
            claude_assistant(
                "a3",
                "u1",
                "01.300",
                "msg_p",
                [{"type": "tool_use", "id": "t2", "name": "Read", "input": {"path": "b"}}],
                usage,
            ),
            claude_user(
                "u2",
                "a3",
                "01.400",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": "B"}],
                        "is_error": True,
                    }
                ],
            ),
            claude_assistant("a4", "u2", "02.000", "msg_q", [{"type": "text", "text": "Done."}], usage),
        ],
    )
    [row] = read_rollouts(tmp_path)
    assert [(m["role"], m["content"], len(m["tool_calls"])) for m in row["messages"]] == [
        ("user", "Read both files", 0),
        ("assistant", "Reading both.", 2),
        ("tool", "A", 0),
        ("tool", "B", 0),
        ("assistant", "Done.", 0),
    ]
    assert [c["id"] for c in row["messages"][1]["tool_calls"]] == ["t1", "t2"]
    assert row["usage"]["output_tokens"] == 100  # two responses, not four lines
    assert row["tool_error_count"] == 1


def test_rewind_keeps_the_active_branch_and_records_the_policy(tmp_path: Path) -> None:
    usage = {"input_tokens": 1, "output_tokens": 1}
    session_file(
        tmp_path,
        [
            claude_user("q1", None, "00.000", "Name a color"),
            claude_assistant("r1", "q1", "01.000", "m1", [{"type": "text", "text": "Blue."}], usage),
            claude_user("q2", "r1", "02.000", "Another one"),
            claude_assistant("r2", "q2", "03.000", "m2", [{"type": "text", "text": "Red."}], usage),
            # the user rewound to r1 and asked something else: a sibling of q2
            claude_user("q2b", "r1", "04.000", "Name a fruit"),
            claude_assistant("r2b", "q2b", "05.000", "m3", [{"type": "text", "text": "Apple."}], usage),
        ],
    )
    [row] = read_rollouts(tmp_path)
    assert [m["content"] for m in row["messages"]] == ["Name a color", "Blue.", "Name a fruit", "Apple."]
    assert row["branch_policy"] == "active_path"
    assert json.loads(row["source_meta"])["has_branches"] is True
    assert row["usage"]["output_tokens"] == 2  # the abandoned branch's call is not in this conversation


def test_compaction_is_crossed_and_its_summary_is_meta(tmp_path: Path) -> None:
    usage = {"input_tokens": 1, "output_tokens": 1}
    session_file(
        tmp_path,
        [
            claude_user("q1", None, "00.000", "First task"),
            claude_assistant("r1", "q1", "01.000", "m1", [{"type": "text", "text": "Done 1."}], usage),
            {
                "type": "system",
                "subtype": "compact_boundary",
                "uuid": "c1",
                "parentUuid": None,
                "logicalParentUuid": "r1",
                "timestamp": "2026-02-03T09:15:02.000Z",
                "compactMetadata": {"trigger": "auto", "preTokens": 150000},
            }
            | CLAUDE_ENVELOPE,
            claude_user(
                "s1",
                "c1",
                "02.500",
                "This session is being continued from a previous conversation...",
                isCompactSummary=True,
                isVisibleInTranscriptOnly=True,
            ),
            claude_user("q2", "s1", "03.000", "Second task"),
            claude_assistant("r2", "q2", "04.000", "m2", [{"type": "text", "text": "Done 2."}], usage),
            {"type": "summary", "summary": "Two tasks", "leafUuid": "r2"},
        ],
    )
    [row] = read_rollouts(tmp_path)
    assert [(m["content"][:18], m["is_meta"]) for m in row["messages"]] == [
        ("First task", False),
        ("Done 1.", False),
        ("This session is be", True),
        ("Second task", False),
        ("Done 2.", False),
    ]
    assert row["turn_count"] == 2
    assert row["title"] == "Two tasks"
    assert json.loads(row["source_meta"])["compaction_count"] == 1


def test_injected_cli_lines_are_meta_not_turns(tmp_path: Path) -> None:
    usage = {"input_tokens": 1, "output_tokens": 1}
    session_file(
        tmp_path,
        [
            claude_user(
                "m0",
                None,
                "00.000",
                "Caveat: The messages below were generated by the user while running local commands.",
                isMeta=True,
            ),
            claude_user(
                "m1", "m0", "00.100", "<command-name>/model</command-name>\n<command-args></command-args>"
            ),
            claude_user("m2", "m1", "00.200", "<local-command-stdout>Set model</local-command-stdout>"),
            claude_user(
                "q1",
                "m2",
                "01.000",
                [
                    {"type": "text", "text": "Real question"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                ],
            ),
            claude_assistant("r1", "q1", "02.000", "m1x", [{"type": "text", "text": "Answer"}], usage),
        ],
    )
    [row] = read_rollouts(tmp_path)
    assert [m["is_meta"] for m in row["messages"]] == [True, True, True, False, False]
    assert row["turn_count"] == 1
    assert row["first_user_message"] == "Real question\n\n[image: image/png]"
    assert "iVBORw0KGgo" not in json.dumps(row, default=str)


def test_subagent_files_fan_out_with_keyed_trace_ids(tmp_path: Path) -> None:
    usage = {"input_tokens": 1, "output_tokens": 1}
    main = session_file(
        tmp_path,
        [
            claude_user("q1", None, "00.000", "Research X"),
            claude_assistant(
                "r1",
                "q1",
                "01.000",
                "m1",
                [{"type": "tool_use", "id": "task_1", "name": "Task", "input": {"prompt": "look up X"}}],
                usage,
            ),
            claude_user(
                "q2", "r1", "09.000", [{"type": "tool_result", "tool_use_id": "task_1", "content": "X is 1"}]
            ),
            claude_assistant("r2", "q2", "10.000", "m2", [{"type": "text", "text": "X is 1."}], usage),
        ],
    )
    sidechain = {"isSidechain": True, "agentId": "a7f3"}
    write_jsonl(
        main.parent / CLAUDE_SESSION / "subagents" / "agent-a7f3.jsonl",
        [
            claude_user("s1", None, "02.000", "look up X", **sidechain),
            claude_assistant(
                "s2", "s1", "03.000", "m9", [{"type": "text", "text": "X is 1"}], usage, **sidechain
            ),
        ],
    )
    (main.parent / CLAUDE_SESSION / "subagents" / "agent-a7f3.meta.json").write_text(
        '{"agentType": "Explore"}'
    )
    rows = read_rollouts(tmp_path)
    assert [(r["trace_id"], r["is_sidechain"], r["agent_id"], r["parent_session_id"]) for r in rows] == [
        (f"claude_code:{CLAUDE_SESSION}", False, None, None),
        (f"claude_code:{CLAUDE_SESSION}:a7f3", True, "a7f3", CLAUDE_SESSION),
    ]
    assert [m["content"] for m in rows[1]["messages"]] == ["look up X", "X is 1"]
    assert json.loads(rows[1]["source_meta"])["agent_meta"] == {"agentType": "Explore"}


def test_old_layout_sidechain_file_and_resume_copy_get_distinct_ids(tmp_path: Path) -> None:
    usage = {"input_tokens": 1, "output_tokens": 1}
    session_file(tmp_path, claude_basic_lines())
    other = "8e2f0000-aaaa-4bbb-8ccc-000000000009"
    # a resumed session: the new file repeats the old lines (same uuids), then continues under its own id
    copied = [line | {"sessionId": CLAUDE_SESSION} for line in claude_basic_lines()]
    session_file(
        tmp_path,
        [
            *copied,
            claude_user("q9", "r3", "20.000", "And README?", sessionId=other),
            claude_assistant(
                "r9", "q9", "21.000", "m9", [{"type": "text", "text": "10."}], usage, sessionId=other
            ),
        ],
        name=other,
    )
    sidechain = {"isSidechain": True, "agentId": "b1"}
    session_file(
        tmp_path,
        [
            claude_user("s1", None, "02.000", "sub", **sidechain),
            claude_assistant(
                "s2", "s1", "03.000", "m8", [{"type": "text", "text": "ok"}], usage, **sidechain
            ),
        ],
        name="agent-b1",
    )
    rows = read_rollouts(tmp_path)
    ids = [r["trace_id"] for r in rows]
    assert ids == [
        f"claude_code:{CLAUDE_SESSION}",
        f"claude_code:{other}",
        f"claude_code:{CLAUDE_SESSION}:b1",
    ]
    assert rows[1]["messages"][-1]["content"] == "10." and rows[1]["turn_count"] == 2


def test_garbage_unknown_and_cut_lines_are_tolerated_and_reported(tmp_path: Path) -> None:
    lines = claude_basic_lines()
    session_file(
        tmp_path,
        [lines[0], "{not json", lines[1], {"type": "brand-new-thing", "x": 1}, *lines[2:]],
        cut_last='{"type":"assistant","uuid":"r4","parentUuid":"r3","message":{"id":"m',
    )
    [row] = read_rollouts(tmp_path)
    assert row["message_count"] == 4
    assert row["is_partial"] is True
    assert row["parse_warnings"] == [
        "line 2: not valid JSON",
        "line 4: unknown line type 'brand-new-thing' skipped",
        "line 8: cut short (partial final line)",
    ]


def test_file_without_conversation_is_skipped_whole_with_a_warning(tmp_path: Path) -> None:
    session_file(
        tmp_path, [{"type": "file-history-snapshot", "messageId": "x", "snapshot": {}}], name="empty"
    )
    session_file(tmp_path, claude_basic_lines())
    warnings: list[str] = []
    rows = read_rollouts(tmp_path, format_name="claude_code", warnings=warnings)
    assert [r["session_id"] for r in rows] == [CLAUDE_SESSION]
    assert warnings == [f"{tmp_path / PROJECT / 'empty.jsonl'}: skipped: no user or assistant lines"]


def test_sessions_index_supplies_title_and_project_path(tmp_path: Path) -> None:
    session_file(tmp_path, claude_basic_lines())
    (tmp_path / PROJECT / "sessions-index.json").write_text(
        json.dumps(
            {
                "version": 1,
                "entries": [
                    {
                        "sessionId": CLAUDE_SESSION,
                        "customTitle": "Count lines",
                        "projectPath": "/home/ana/proj-root",
                    }
                ],
            }
        )
    )
    [row] = read_rollouts(tmp_path)
    assert (row["title"], row["project_path"]) == ("Count lines", "/home/ana/proj-root")


def test_synthetic_model_is_not_a_model(tmp_path: Path) -> None:
    lines = claude_basic_lines()
    error_line = claude(
        "assistant",
        "r4",
        "r3",
        "04.000",
        {
            "id": "msg_err",
            "role": "assistant",
            "model": "<synthetic>",
            "content": [{"type": "text", "text": "API Error"}],
        },
    )
    session_file(tmp_path, [*lines, error_line])
    [row] = read_rollouts(tmp_path)
    assert row["models"] == ["claude-x"] and row["model"] == "claude-x"


def test_attachment_lines_link_the_turns_of_a_2_1_session(tmp_path: Path) -> None:
    """Claude Code 2.1 chains `attachment` lines between turns: a follow-up's parent is one of them.

    Written by `claude -p` then `claude -p --continue` (2.1.332, as `agentcap run` drives it): the chain
    must be walked through them, and the new bookkeeping lines are known, not warned about.
    """
    usage = {"input_tokens": 1, "output_tokens": 1}

    def attachment(uuid: str, parent: str) -> dict:
        return {"type": "attachment", "uuid": uuid, "parentUuid": parent, "attachment": {}} | CLAUDE_ENVELOPE

    bookkeeping = [
        {"type": kind, "sessionId": CLAUDE_SESSION}
        for kind in ("atis-latch", "api-request-shape", "api-request-blob", "api-request", "cost-state")
    ]
    session_file(
        tmp_path,
        [
            claude_user("q1", None, "00.000", "hi"),
            attachment("a1", "q1"),
            *bookkeeping,
            claude_assistant("r1", "a1", "01.000", "m1", [{"type": "text", "text": "Hello."}], usage),
            attachment("a2", "r1"),
            {"type": "last-prompt", "lastPrompt": "hi", "leafUuid": "a2", "sessionId": CLAUDE_SESSION},
            claude_user("q2", "a2", "02.000", "Continue."),
            {"type": "tools-used", "sessionId": CLAUDE_SESSION},
            claude_assistant("r2", "q2", "03.000", "m2", [{"type": "text", "text": "Again."}], usage),
            {"type": "mode", "sessionId": CLAUDE_SESSION},
        ],
    )
    [row] = read_rollouts(tmp_path)
    assert [(m["role"], m["content"]) for m in row["messages"]] == [
        ("user", "hi"),
        ("assistant", "Hello."),
        ("user", "Continue."),
        ("assistant", "Again."),
    ]
    assert row["turn_count"] == 2
    assert row["parse_warnings"] == []
