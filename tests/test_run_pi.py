"""`agentcap run` driving a real agent CLI: pi, installed from the npm registry at a pinned version.

2 tasks × 2 turns against the loopback fake model server. pi runs headless (`pi -p`, follow-ups with
`--continue`) with the proxy as a custom OpenAI-compatible provider in its temporary HOME. A wrapper
in front of pi dumps what pi could read at each turn into that HOME, so the test can prove the real
key was never there.
"""

from __future__ import annotations

import json
import os
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

PI_PACKAGE = "@mariozechner/pi-coding-agent"
PI_VERSION = "0.73.1"
# pi's parser has no `--`: as arguments, "-v" would be --version and "@notes" a file to attach.
ALPHA = ("-v: read the README", "@notes: alpha again")


@pytest.fixture(scope="session")
def pi_command(request: pytest.FixtureRequest) -> Path:
    return npm_cli(request, PI_PACKAGE, PI_VERSION, "pi")


def test_pi_two_tasks_two_turns_tagged_traced_and_never_holding_the_key(
    pi_command: Path, tmp_path: Path
) -> None:
    home, runs = tmp_path / "home", tmp_path / "runs"
    work, tasks = two_tasks(tmp_path, ALPHA)
    wrapper = env_dumping_wrapper(tmp_path / "pi-wrapper", pi_command)

    with FakeModelServer() as upstream:
        result = agentcap_run(
            *("--agent", "pi", "--model", "fake-coder", "--upstream", upstream.url, "--tasks", str(tasks)),
            *("--runs-dir", str(runs), "--run-id", "pi-test", "--home", str(home), "--", str(wrapper)),
            cwd=work,
            env=user_env(OPENAI_API_KEY=CANARY_KEY, GITHUB_TOKEN=OTHER_SECRET),
        )
        seen = upstream.seen
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentcap run pi-test: complete" in result.stderr
    assert f"agentcap export {runs / 'pi-test'}" in result.stderr

    run = runs / "pi-test"
    calls = records(run)
    # Every turn: pi calls the model, runs the `read` tool the fake model asks for, calls it again.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        ("alpha", 1), ("alpha", 1), ("alpha", 2), ("alpha", 2), ("beta", 1), ("beta", 1), ("beta", 2), ("beta", 2)
    ]  # fmt: skip
    # The follow-up continued pi's own session: its first call carries turn 1's conversation.
    users = [m["content"] for m in calls[2]["request"]["body"]["messages"] if m["role"] == "user"]
    assert len(users) == 2
    assert ALPHA[0] in json.dumps(users[0]) and ALPHA[1] in json.dumps(users[1])  # as written

    # The upstream got the real key on every call; the record keeps its keyed fingerprint.
    posts = [request for request in seen if request["method"] == "POST"]
    assert len(posts) == 8
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    redactor = load_addon_module().Redactor((runs / ".fingerprint-key").read_bytes().strip(), [])
    assert {dict(call["request"]["headers"])["authorization"] for call in calls} == {
        redactor.mask(f"Bearer {CANARY_KEY}".encode()).decode()
    }

    # Native traces: one pi session per task, each holding both turns.
    traces = sorted((run / "traces").rglob("*.jsonl"))
    assert len(traces) == 2
    for trace in traces:
        lines = [json.loads(line) for line in trace.read_text().splitlines()]
        user_turns = [
            line for line in lines if line["type"] == "message" and line["message"]["role"] == "user"
        ]
        assert len(user_turns) == 2
    info = agent_run(run)
    assert info["status"] == "complete"
    assert [(t["task_id"], t["status"], len(t["traces"])) for t in info["tasks"]] == [
        ("alpha", "complete", 1),
        ("beta", "complete", 1),
    ]
    turns = [turn for task in info["tasks"] for turn in task["turns"]]
    assert [(turn["turn"], turn["status"], turn["exit_code"]) for turn in turns] == [
        (1, "ok", 0),
        (2, "ok", 0),
    ] * 2
    assert "Done." in (run / turns[0]["stdout"]).read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "complete"

    # The key and the other credential were nowhere the agent could look, nor in any file or log.
    environments = assert_credentials_out_of_reach(tmp_path, home, 4, CANARY_KEY)
    assert not any("OPENAI_API_KEY" in environment for environment in environments)  # pi reads models.json
    assert CANARY_KEY not in result.stdout + result.stderr
    assert (home / "alpha" / ".pi" / "agent" / "models.json").stat().st_mode & 0o777 == 0o600
    assert os.environ.get("OPENAI_API_KEY") != CANARY_KEY  # the test process itself never held it
