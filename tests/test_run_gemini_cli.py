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
from fake_model_server import FakeModelServer
from proxy_harness import load_addon_module
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
    home, runs = tmp_path / "home", tmp_path / "runs"
    work, tasks = two_tasks(tmp_path, ALPHA)
    wrapper = env_dumping_wrapper(tmp_path / "gemini-wrapper", gemini_command)

    with FakeModelServer() as upstream:
        result = agentcap_run(
            *("--agent", "gemini-cli", "--model", "fake-gemini", "--upstream", upstream.url),
            *("--tasks", str(tasks), "--runs-dir", str(runs), "--run-id", "gemini-test"),
            *("--home", str(home), "--timeout", "60", "--", str(wrapper)),
            cwd=work,
            env=user_env(GEMINI_API_KEY=CANARY_KEY, GITHUB_TOKEN=OTHER_SECRET),
        )
        seen = upstream.seen
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentcap run gemini-test: complete" in result.stderr

    run = runs / "gemini-test"
    calls = records(run)
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
    assert [(request["method"], request["path"]) for request in seen] == [("POST", STREAM_PATH)] * 8
    assert {request["headers"]["x-goog-api-key"] for request in seen} == {CANARY_KEY}
    redactor = load_addon_module().Redactor((runs / ".fingerprint-key").read_bytes().strip(), [])
    assert {dict(call["request"]["headers"])["x-goog-api-key"] for call in calls} == {
        redactor.mask(CANARY_KEY.encode()).decode()
    }

    info = agent_run(run)
    assert [(t["task_id"], t["status"], t["traces"]) for t in info["tasks"]] == [
        ("alpha", "complete", []),
        ("beta", "complete", []),
    ]
    turns = [turn for task in info["tasks"] for turn in task["turns"]]
    assert [(turn["turn"], turn["status"], turn["exit_code"]) for turn in turns] == [
        (1, "ok", 0),
        (2, "ok", 0),
    ] * 2
    assert "Gemini says héllo ✓." in (run / turns[0]["stdout"]).read_text()
    # Its own session: one file per task in the task's HOME holds both prompts. (A resumed turn that
    # starts in another minute than the session also leaves a stub file of that minute, unused.)
    for task, prompts in (
        ("alpha", list(ALPHA)),
        ("beta", ["Summarise the README", "Beta again"]),
    ):
        assert [found for found in prompts_per_session(home / task, prompts) if found] == [prompts]

    environments = assert_credentials_out_of_reach(tmp_path, home, 4, CANARY_KEY)
    assert all(env["GEMINI_API_KEY"].startswith("agentcap-placeholder-") for env in environments)
    assert CANARY_KEY not in result.stdout + result.stderr
