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
from fake_model_server import FakeModelServer
from proxy_harness import load_addon_module
from rollout_fixtures import read_rollouts
from run_helpers import (
    OTHER_SECRET,
    agent_run,
    agentcap_run,
    assert_credentials_out_of_reach,
    env_dumping_wrapper,
    npm_cli,
    records,
    two_tasks,
    user_env,
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
    home, runs = tmp_path / "home", tmp_path / "runs"
    work, tasks = two_tasks(tmp_path, ALPHA)
    wrapper = env_dumping_wrapper(tmp_path / "claude-wrapper", claude_command)

    with FakeModelServer() as upstream:
        result = agentcap_run(
            *("--agent", "claude-code", "--model", "fake-claude", "--upstream", upstream.url),
            *("--tasks", str(tasks), "--runs-dir", str(runs), "--run-id", "claude-test"),
            *("--home", str(home), "--timeout", "60", "--", str(wrapper)),
            cwd=work,
            env=user_env(ANTHROPIC_API_KEY=CANARY_KEY, GITHUB_TOKEN=OTHER_SECRET),
        )
        seen = upstream.seen
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentcap run claude-test: complete" in result.stderr

    run = runs / "claude-test"
    calls = records(run)
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
    assert [(request["method"], request["path"]) for request in seen] == [
        ("POST", "/v1/messages?beta=true")
    ] * 6
    assert {request["headers"]["x-api-key"] for request in seen} == {CANARY_KEY}
    redactor = load_addon_module().Redactor((runs / ".fingerprint-key").read_bytes().strip(), [])
    assert {dict(call["request"]["headers"])["x-api-key"] for call in calls} == {
        redactor.mask(CANARY_KEY.encode()).decode()
    }

    # Native traces: one session per task, read back whole (both turns, the tool call between).
    info = agent_run(run)
    assert [(t["task_id"], t["status"], len(t["traces"])) for t in info["tasks"]] == [
        ("alpha", "complete", 1),
        ("beta", "complete", 1),
    ]
    rows = read_rollouts(run / "traces", format_name="claude_code")
    assert sorted([m["content"] for m in row["messages"] if m["role"] == "user"] for row in rows) == [
        list(ALPHA),
        ["Summarise the README", "Beta again"],
    ]
    assert all(row["tool_call_count"] == 1 and row["parse_warnings"] == [] for row in rows)
    turns = [turn for task in info["tasks"] for turn in task["turns"]]
    assert [(turn["turn"], turn["status"], turn["exit_code"]) for turn in turns] == [
        (1, "ok", 0),
        (2, "ok", 0),
    ] * 2
    assert "Claude-shaped hello." in (run / turns[0]["stdout"]).read_text()

    environments = assert_credentials_out_of_reach(tmp_path, home, 4, CANARY_KEY)
    assert all(env["ANTHROPIC_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
    assert CANARY_KEY not in result.stdout + result.stderr
