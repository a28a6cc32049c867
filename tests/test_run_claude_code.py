"""`agentcap run` driving a real Claude Code, installed from the npm registry at a pinned version.

2 tasks × 2 turns against the loopback fake model server. Claude Code runs headless (`claude -p`,
follow-ups with `-p --continue`) with `ANTHROPIC_BASE_URL` at the proxy and the placeholder in
`ANTHROPIC_API_KEY`; its sessions are written below `CLAUDE_CONFIG_DIR` in the task's HOME and
collected into the run. A wrapper dumps what it could read at each turn, so the test can prove the
real key was never there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import CANARY_KEY
from rollout_fixtures import read_rollouts
from run_helpers import (
    assert_credentials_out_of_reach,
    assert_every_turn_ok,
    assert_records_hold_the_fingerprint,
    npm_cli,
    run_two_tasks,
)

CLAUDE_PACKAGE = "@anthropic-ai/claude-code"
CLAUDE_VERSION = "2.1.332"
# Prompts that start with dashes: on the command line they would be taken for options.
ALPHA = ("-v: read the README", "--alpha again")


@pytest.fixture(scope="session")
def claude_command(request: pytest.FixtureRequest) -> Path:
    return npm_cli(request, CLAUDE_PACKAGE, CLAUDE_VERSION, "claude")


def user_texts(call: dict) -> str:
    return json.dumps([m["content"] for m in call["request"]["body"]["messages"] if m["role"] == "user"])


def test_claude_code_two_tasks_two_turns_tagged_traced_and_never_holding_the_key(
    claude_command: Path, tmp_path: Path
) -> None:
    ran = run_two_tasks(
        "claude-code", claude_command, tmp_path, model="fake-claude", key_env="ANTHROPIC_API_KEY", alpha=ALPHA
    )
    calls = ran.calls
    # Turn 1 is answered in words; in turn 2 the fake model calls a tool, Claude Code runs it (its
    # input does not validate: the error is the tool result) and the model answers.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        ("alpha", 1), ("alpha", 2), ("alpha", 2), ("beta", 1), ("beta", 2), ("beta", 2)
    ]  # fmt: skip
    assert {(call["api"], call["url"].split("/", 3)[3]) for call in calls} == {
        ("messages", "v1/messages?beta=true")
    }
    assert all(call["response"]["status_code"] == 200 for call in calls)
    # The follow-up continued Claude Code's own session: its first call carries turn 1's prompt.
    assert ALPHA[0] in user_texts(calls[1]) and ALPHA[1] in user_texts(calls[1])
    assert "Alpha" not in user_texts(calls[3])  # beta's HOME: beta's own session

    # Only model calls reached the upstream, each with the real key; the record keeps its fingerprint.
    assert [(request["method"], request["path"]) for request in ran.upstream_saw] == [
        ("POST", "/v1/messages?beta=true")
    ] * 6
    assert {request["headers"]["x-api-key"] for request in ran.upstream_saw} == {CANARY_KEY}
    assert_records_hold_the_fingerprint(ran, "x-api-key", CANARY_KEY)
    assert ran.outside_hosts == []

    # Native traces: one session per task, read back whole (both turns, the tool call between).
    turns = assert_every_turn_ok(ran.run, traces_per_task=1)
    rows = read_rollouts(ran.run / "traces", format_name="claude_code")
    assert sorted([m["content"] for m in row["messages"] if m["role"] == "user"] for row in rows) == [
        list(ALPHA),
        ["Summarise the README", "Beta again"],
    ]
    assert all(row["tool_call_count"] == 1 and row["parse_warnings"] == [] for row in rows)
    assert "Claude-shaped hello." in (ran.run / turns[0]["stdout"]).read_text()

    environments = assert_credentials_out_of_reach(tmp_path, ran.home, 4, CANARY_KEY)
    assert all(env["ANTHROPIC_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
