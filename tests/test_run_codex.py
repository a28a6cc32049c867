"""`agentcap run` driving a real agent CLI: Codex, installed from the npm registry at a pinned version.

2 tasks × 2 turns against the loopback fake model server. Codex runs headless (`codex exec`,
follow-ups with `codex exec resume --last`) with the proxy as a custom Responses-API provider in
its temporary CODEX_HOME. Every other host it asks for goes to a refusing loopback proxy: with our
config it asks for none. A wrapper dumps what Codex could read at each turn into that HOME, so the
test can prove the real key was never there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from rollout_fixtures import read_rollouts
from run_helpers import (
    OTHER_SECRET,
    OutboundTrap,
    agent_run,
    agentcap_run,
    assert_credentials_out_of_reach,
    env_dumping_wrapper,
    npm_cli,
    records,
    two_tasks,
    user_env,
)

CODEX_PACKAGE = "@openai/codex"
CODEX_VERSION = "0.171.0"
ALPHA = "-v: read the README"  # a leading dash, which a command line would take for a flag


@pytest.fixture(scope="session")
def codex_command(request: pytest.FixtureRequest) -> Path:
    return npm_cli(request, CODEX_PACKAGE, CODEX_VERSION, "codex")


def user_texts(call: dict[str, Any]) -> list[str]:
    """The user's own messages in a Responses request (not the context Codex injects as `<…>` blocks)."""
    texts = [
        part["text"]
        for item in call["request"]["body"]["input"]
        if item.get("role") == "user"
        for part in item["content"]
        if part.get("type") == "input_text"
    ]
    return [text for text in texts if not text.startswith("<")]


def test_codex_two_tasks_two_turns_tagged_traced_offline_and_never_holding_the_key(
    codex_command: Path, tmp_path: Path
) -> None:
    home, runs = tmp_path / "home", tmp_path / "runs"
    work, tasks = two_tasks(tmp_path, (ALPHA, "--alpha again"))
    wrapper = env_dumping_wrapper(tmp_path / "codex-wrapper", codex_command)

    with FakeModelServer() as upstream, OutboundTrap() as outside:
        result = agentcap_run(
            *("--agent", "codex", "--model", "fake-coder", "--upstream", upstream.url),
            *("--tasks", str(tasks), "--runs-dir", str(runs), "--run-id", "codex-test"),
            *("--home", str(home), "--timeout", "120", "--", str(wrapper)),
            cwd=work,
            env=user_env(OPENAI_API_KEY=CANARY_KEY, GITHUB_TOKEN=OTHER_SECRET) | outside.env,
        )
        seen = upstream.seen
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentcap run codex-test: complete" in result.stderr

    run = runs / "codex-test"
    calls = records(run)
    # Turn 1: Codex calls the model, runs the tool the fake model asks for, calls it again. Turn 2:
    # the history already holds a tool result, so the fake model answers at once.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        ("alpha", 1), ("alpha", 1), ("alpha", 2), ("beta", 1), ("beta", 1), ("beta", 2)
    ]  # fmt: skip
    assert {(call["api"], call["transport"]) for call in calls} == {("responses", "http")}
    assert all(call["response"]["status_code"] == 200 and call["error"] is None for call in calls)
    # The prompt reaches the model as written; the follow-up resumed Codex's own session.
    assert user_texts(calls[0]) == [ALPHA]
    assert user_texts(calls[2]) == [ALPHA, "--alpha again"]
    assert user_texts(calls[5]) == ["Summarise the README", "Beta again"]

    # The upstream got the real key on every call, and nothing else left the machine.
    posts = [request for request in seen if request["method"] == "POST"]
    assert len(posts) == len(calls)
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    assert outside.hosts == []

    # Native traces: one rollout file per task, both turns in it.
    traces = sorted((run / "traces").rglob("rollout-*.jsonl"))
    assert len(traces) == 2
    rollouts = read_rollouts(*traces, format_name="codex")
    assert sorted((row["first_user_message"], row["turn_count"], row["model"]) for row in rollouts) == [
        (ALPHA, 2, "fake-coder"),
        ("Summarise the README", 2, "fake-coder"),
    ]
    info = agent_run(run)
    assert [(t["task_id"], t["status"], len(t["traces"])) for t in info["tasks"]] == [
        ("alpha", "complete", 1),
        ("beta", "complete", 1),
    ]
    turns = [turn for task in info["tasks"] for turn in task["turns"]]
    assert [(turn["turn"], turn["status"], turn["exit_code"]) for turn in turns] == [
        (1, "ok", 0),
        (2, "ok", 0),
    ] * 2
    assert "Responses API says hi." in (run / turns[0]["stdout"]).read_text()

    # The key was nowhere Codex could look (it holds the placeholder), nor in any file or log.
    environments = assert_credentials_out_of_reach(tmp_path, home, 4, CANARY_KEY)
    assert all(env["OPENAI_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
    assert CANARY_KEY not in result.stdout + result.stderr
    assert (home / "alpha" / ".codex" / "config.toml").stat().st_mode & 0o777 == 0o600
