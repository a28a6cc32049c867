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
from run_helpers import (
    assert_credentials_out_of_reach,
    assert_every_turn_ok,
    assert_records_hold_the_fingerprint,
    npm_cli,
    run_two_tasks,
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
    ran = run_two_tasks("pi", pi_command, tmp_path, model="fake-coder", key_env="OPENAI_API_KEY", alpha=ALPHA)
    calls = ran.calls
    # Every turn: pi calls the model, runs the `read` tool the fake model asks for, calls it again.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        ("alpha", 1), ("alpha", 1), ("alpha", 2), ("alpha", 2), ("beta", 1), ("beta", 1), ("beta", 2), ("beta", 2)
    ]  # fmt: skip
    # The follow-up continued pi's own session: its first call carries turn 1's conversation.
    users = [m["content"] for m in calls[2]["request"]["body"]["messages"] if m["role"] == "user"]
    assert len(users) == 2
    assert ALPHA[0] in json.dumps(users[0]) and ALPHA[1] in json.dumps(users[1])  # as written

    # The upstream got the real key on every call, and nothing else left the machine.
    posts = [request for request in ran.upstream_saw if request["method"] == "POST"]
    assert len(posts) == 8
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    assert_records_hold_the_fingerprint(ran, "authorization", f"Bearer {CANARY_KEY}")
    assert ran.outside_hosts == []

    # Native traces: one pi session per task, each holding both turns.
    traces = sorted((ran.run / "traces").rglob("*.jsonl"))
    assert len(traces) == 2
    for trace in traces:
        lines = [json.loads(line) for line in trace.read_text().splitlines()]
        user_turns = [
            line for line in lines if line["type"] == "message" and line["message"]["role"] == "user"
        ]
        assert len(user_turns) == 2
    turns = assert_every_turn_ok(ran.run, traces_per_task=1)
    assert "Done." in (ran.run / turns[0]["stdout"]).read_text()
    assert json.loads((ran.run / "run.json").read_text())["status"] == "complete"

    # The key and the other credential were nowhere the agent could look, nor in any file or log.
    environments = assert_credentials_out_of_reach(tmp_path, ran.home, 4, CANARY_KEY)
    assert not any("OPENAI_API_KEY" in environment for environment in environments)  # pi reads models.json
    assert (ran.home / "alpha" / ".pi" / "agent" / "models.json").stat().st_mode & 0o777 == 0o600
    assert os.environ.get("OPENAI_API_KEY") != CANARY_KEY  # the test process itself never held it
