"""`<base>-sessions` end to end: built by the export, published beside the other datasets (locally and
to the fake Hub), one valid STS file per conversation, and a second push changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import conversation_run

from exporter.export.command import export_command
from exporter.rollouts.sts import loads, rollout_messages, session_lines, validate

RUN = "demo-20251121T081500-a1b2c3"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    conversation_run(tmp_path / "runs", RUN)
    return tmp_path / "runs"


def test_sessions_of_the_demo_run(runs_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(export_command, [str(runs_dir), "--no-scan", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "local" / "agentcap-sessions"
    files = sorted(p.relative_to(folder).as_posix() for p in (folder / "sessions").rglob("*.jsonl"))
    assert files == [f"sessions/{RUN}/task-1.jsonl", f"sessions/{RUN}/task-2.jsonl"]
    main = loads((folder / files[0]).read_text())
    head, *messages = main
    meta = json.loads(head["agentcap"])
    assert (head["type"], head["harness"], head["id"], head["name"]) == (
        "session",
        "demo",
        f"captures:{RUN}:task-1",
        "Fix the failing tests in Straße.py",
    )
    assert (meta["run_id"], meta["task_id"], meta["turns"], meta["calls"], meta["is_sidechain"]) == (
        RUN,
        "task-1",
        [1, 3],
        4,
        False,
    )
    assert len(meta["request_ids"]) == 4 and meta["usage"]["input_tokens"] == 40
    # every message once, in order: the compaction's summary follows what it replaced
    assert [(m["message"]["role"], m["message"]["content"]) for m in messages] == [
        ("user", "Fix the failing tests in Straße.py"),
        ("assistant", "I will read the README"),
        ("assistant", ""),
        ("tool", "# README\nsee 日本 docs"),
        ("assistant", "Fixed."),
        ("user", "now add a changelog"),
        ("assistant", "Changelog added."),
        ("user", "Summary so far: tests fixed; add a changelog"),
        ("assistant", "Done."),
    ]
    assert all(isinstance(m["message"]["timestamp"], int) for m in messages)
    # the failed calls of task-2 are visible, flagged
    failed = loads((folder / files[1]).read_text())[1:]
    assert [m["message"].get("isError") for m in failed] == [None, True, True]
    assert failed[1]["message"]["content"].startswith("[call failed: HTTP 500")
    for path in files:
        text = (folder / path).read_text()
        assert validate(text) == []


def test_validator_rejects_what_the_field_table_forbids() -> None:
    good = '{"type":"session","harness":"h","id":"s"}\n' + "".join(
        json.dumps({"type": "message", "message": m}) + "\n"
        for m in (
            {"role": "user", "content": "hi", "timestamp": 1767699999000},
            {
                "role": "assistant",
                "content": "",
                "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "toolCallId": "c1", "content": "7"},
        )
    )
    assert validate(good) == []
    lines = good.splitlines()
    broken = [
        (lines[1] + "\n" + lines[0], "first line must be the session header"),
        (lines[0].replace('"id":"s"', '"id":""'), "non-empty string 'id'"),
        (good.replace('"role": "user"', '"role": "human"'), "role 'human'"),
        (good.replace("1767699999000", "1767699999"), "epoch milliseconds"),
        (good.replace('"arguments": "{}"', '"arguments": {}'), "arguments must be a JSON string"),
        (good.replace('"toolCallId": "c1"', '"toolCallId": "c2"'), "names no earlier toolCalls[].id"),
        (good.replace('"content": "7"', '"text": "7"'), "'content' is required"),
        (good + lines[0] + "\n", "one header per file"),
    ]
    for text, problem in broken:
        assert any(problem in found for found in validate(text)), (problem, validate(text))


def test_round_trip_sts_to_rollout_row_to_sts(runs_dir: Path, tmp_path: Path) -> None:
    CliRunner().invoke(export_command, [str(runs_dir), "--no-scan", "-o", str(tmp_path / "out")])
    for path in (tmp_path / "out" / "local" / "agentcap-sessions").rglob("*.jsonl"):
        lines = loads(path.read_text())
        row = {
            "agent": lines[0]["harness"],
            "trace_id": lines[0]["id"],
            "title": lines[0]["name"],
            "first_user_message": None,
            "session_id": lines[0]["id"],
            "messages": rollout_messages(lines),
        }
        again = session_lines(row, json.loads(lines[0]["agentcap"]))
        assert again == lines


def test_push_creates_the_sessions_repo_in_the_collection_and_a_second_push_changes_nothing(
    hub, runs_dir: Path
) -> None:
    first = CliRunner().invoke(export_command, [str(runs_dir), "--no-scan", "--push", "tester/agent-runs"])
    assert first.exit_code == 0, first.output
    files = hub.files("tester/agent-runs-sessions")
    assert sorted(set(files) - {".gitattributes"}) == [
        ".agentcap/index.json",
        "README.md",
        f"sessions/{RUN}/task-1.jsonl",
        f"sessions/{RUN}/task-2.jsonl",
    ]
    card = files["README.md"].decode()
    assert (
        "path: sessions/**/*.jsonl" in card
        and "Session Trace Simple Format" in card
        and "pip install teich" in card
    )
    for path, data in files.items():
        if path.endswith(".jsonl"):
            assert validate(data.decode()) == []
    [collection] = hub.collections_of("tester")
    assert [item["id"] for item in collection["items"]] == [
        "tester/agent-runs-captures",
        "tester/agent-runs-sessions",
    ]
    commits = len(hub.commits)

    second = CliRunner().invoke(export_command, [str(runs_dir), "--no-scan", "--push", "tester/agent-runs"])
    assert second.exit_code == 0, second.output
    assert len(hub.commits) == commits  # the same runs again: every repo is left as it was
    assert hub.files("tester/agent-runs-sessions") == files
    [again] = hub.collections_of("tester")
    assert len(again["items"]) == len(collection["items"])


def test_the_scan_reads_the_session_files(tmp_path: Path) -> None:
    """A secret streamed in two deltas is never whole in captures.jsonl, but it is in the session
    built from it: the gate must scan the session files, and block."""
    from factories import make_record, write_run
    from scan_fakes import canary_secrets

    secret = canary_secrets()["github"]
    record = make_record(seq=1, stream=True, reply="x")
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in (secret[:12], secret[12:])
    ]
    raw = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    record["response"] |= {"raw": raw, "size": len(raw), "wire_size": len(raw)}
    runs = tmp_path / "runs"
    write_run(runs, RUN, [record])
    assert secret not in (runs / RUN / "captures.jsonl").read_text()

    result = CliRunner().invoke(export_command, [str(runs), "--no-verify", "-o", str(tmp_path / "out")])

    assert result.exit_code == 1, result.output
    assert "secret scan blocked the export" in result.output
    assert f"agentcap-sessions/sessions/{RUN}/task-1.jsonl" in result.output
    assert not (tmp_path / "out" / "local" / "agentcap-sessions").exists()
    assert secret not in result.output


def test_images_and_other_parts_are_short_placeholders() -> None:
    """Whatever the API, a non-text part reads as a marker, never as kilobytes of base64."""
    from factories import make_record, typed

    from exporter.rollouts.conversations import conversations

    pixels = "iVBORw0KGgo" + "A" * 4000
    chat = make_record(
        seq=1,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixels}"}},
                    {"type": "input_audio", "input_audio": {"data": pixels, "format": "wav"}},
                ],
            }
        ],
    )
    anthropic = make_record(seq=2, task_id="task-2", api="messages")
    anthropic["request"]["body"] = {
        "model": "claude-x",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": pixels},
                    },
                    {"type": "document", "source": {"type": "base64", "data": pixels}},
                ],
            }
        ],
    }
    gemini = make_record(seq=3, task_id="task-3", api="gemini.generate_content")
    gemini["request"]["body"] = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "and this?"}, {"inlineData": {"mimeType": "image/png", "data": pixels}}],
            }
        ]
    }
    firsts = [
        chain.messages[0]["content"] for chain in conversations(typed(r) for r in (chat, anthropic, gemini))
    ]
    assert firsts == [
        "what is this?\n\n[image]\n\n[input_audio]",
        "[image]\n\n[document]",
        "and this?\n\n[image]",
    ]
