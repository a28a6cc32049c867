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
from rollout_fixtures import read_rollouts
from run_helpers import (
    assert_credentials_out_of_reach,
    assert_every_turn_ok,
    assert_records_hold_the_fingerprint,
    npm_cli,
    run_two_tasks,
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
    ran = run_two_tasks(
        "codex",
        codex_command,
        tmp_path,
        model="fake-coder",
        key_env="OPENAI_API_KEY",
        alpha=(ALPHA, "--alpha again"),
    )
    calls = ran.calls
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
    posts = [request for request in ran.upstream_saw if request["method"] == "POST"]
    assert len(posts) == len(calls)
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    assert_records_hold_the_fingerprint(ran, "authorization", f"Bearer {CANARY_KEY}")
    assert ran.outside_hosts == []

    # Native traces: one rollout file per task, both turns in it.
    traces = sorted((ran.run / "traces").rglob("rollout-*.jsonl"))
    assert len(traces) == 2
    rollouts = read_rollouts(*traces, format_name="codex")
    assert sorted((row["first_user_message"], row["turn_count"], row["model"]) for row in rollouts) == [
        (ALPHA, 2, "fake-coder"),
        ("Summarise the README", 2, "fake-coder"),
    ]
    turns = assert_every_turn_ok(ran.run, traces_per_task=1)
    assert "Responses API says hi." in (ran.run / turns[0]["stdout"]).read_text()

    # The key was nowhere Codex could look (it holds the placeholder), nor in any file or log.
    environments = assert_credentials_out_of_reach(tmp_path, ran.home, 4, CANARY_KEY)
    assert all(env["OPENAI_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
    assert (ran.home / "alpha" / ".codex" / "config.toml").stat().st_mode & 0o777 == 0o600
