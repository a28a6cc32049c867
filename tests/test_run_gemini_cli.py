"""`agentcap run` driving a real Gemini CLI, installed from the npm registry at a pinned version.

2 tasks × 2 turns against the loopback fake model server. Gemini CLI runs headless (`gemini -m M -p`,
follow-ups with `--resume latest`) with `GOOGLE_GEMINI_BASE_URL` at the proxy, the placeholder in
`GEMINI_API_KEY` and `~/.gemini/settings.json` choosing that key's auth with statistics and
telemetry off. Its session files are not collected (no `rollouts` format reads them yet): the test
reads them in the task's HOME to prove the follow-up resumed the same session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import CANARY_KEY
from run_helpers import (
    assert_credentials_out_of_reach,
    assert_every_turn_ok,
    assert_records_hold_the_fingerprint,
    npm_cli,
    run_two_tasks,
)

GEMINI_PACKAGE = "@google/gemini-cli"
GEMINI_VERSION = "0.61.0"
# Prompts that start with dashes: on the command line they would be taken for options.
ALPHA = ("-v: read the README", "--alpha again")
STREAM_PATH = "/v1beta/models/fake-gemini:streamGenerateContent?alt=sse"


@pytest.fixture(scope="session")
def gemini_command(request: pytest.FixtureRequest) -> Path:
    return npm_cli(request, GEMINI_PACKAGE, GEMINI_VERSION, "gemini")


def user_texts(call: dict) -> str:
    return json.dumps([c["parts"] for c in call["request"]["body"]["contents"] if c["role"] == "user"])


def prompts_per_session(home: Path, prompts: list[str]) -> list[list[str]]:
    """For each Gemini CLI session file below `home`, which of `prompts` its user turns hold, in order."""
    found = []
    for session in sorted((home / ".gemini" / "tmp").glob("*/chats/session-*.jsonl")):
        lines = [json.loads(line) for line in session.read_text().splitlines()]
        user_parts = [part for line in lines if line.get("type") == "user" for part in line["content"]]
        found.append([part["text"] for part in user_parts if part.get("text") in prompts])
    return found


def test_gemini_cli_two_tasks_two_turns_tagged_resumed_and_never_holding_the_key(
    gemini_command: Path, tmp_path: Path
) -> None:
    ran = run_two_tasks(
        "gemini-cli", gemini_command, tmp_path, model="fake-gemini", key_env="GEMINI_API_KEY", alpha=ALPHA
    )
    calls = ran.calls
    # Every turn: the fake model calls a tool, Gemini CLI answers with its response, the model answers.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        (task, turn) for task in ("alpha", "beta") for turn in (1, 1, 2, 2)
    ]
    assert {(call["api"], call["url"].split("/", 3)[3]) for call in calls} == {
        ("gemini.generate_content", STREAM_PATH.lstrip("/"))
    }
    assert all(call["response"]["status_code"] == 200 for call in calls)
    # The follow-up resumed Gemini CLI's own session: its first call carries turn 1's prompt.
    assert ALPHA[0] in user_texts(calls[2]) and ALPHA[1] in user_texts(calls[2])
    assert "Alpha" not in user_texts(calls[4])  # beta's HOME: beta's own session

    # Only model calls reached the upstream (no loadCodeAssist, no statistics), each with the real key.
    assert [(request["method"], request["path"]) for request in ran.upstream_saw] == [
        ("POST", STREAM_PATH)
    ] * 8
    assert {request["headers"]["x-goog-api-key"] for request in ran.upstream_saw} == {CANARY_KEY}
    assert_records_hold_the_fingerprint(ran, "x-goog-api-key", CANARY_KEY)
    assert ran.outside_hosts == []

    turns = assert_every_turn_ok(ran.run, traces_per_task=0)  # none: see docs/run.md
    assert "Gemini says héllo ✓." in (ran.run / turns[0]["stdout"]).read_text()
    # Its own session: one file per task in the task's HOME holds both prompts. (A resumed turn that
    # starts in another minute than the session also leaves a stub file of that minute, unused.)
    for task, prompts in (
        ("alpha", list(ALPHA)),
        ("beta", ["Summarise the README", "Beta again"]),
    ):
        assert [found for found in prompts_per_session(ran.home / task, prompts) if found] == [prompts]

    environments = assert_credentials_out_of_reach(tmp_path, ran.home, 4, CANARY_KEY)
    assert all(env["GEMINI_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
