"""`agentcap run` driving a real agent CLI: opencode, installed from the npm registry at a pinned version.

2 tasks × 2 turns against the loopback fake model server. opencode runs headless (`opencode run`,
follow-ups with `--continue`) with the proxy as a custom `@ai-sdk/openai-compatible` provider in its
temporary HOME. Every other host it asks for goes to a refusing loopback proxy, as if offline: the
run must not depend on one. A wrapper dumps what opencode could read at each turn into that HOME, so
the test can prove the real key was never there.
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

OPENCODE_PACKAGE = "opencode-ai"
OPENCODE_VERSION = "1.18.33"
# Spaces, quotes and dashes (one leading): opencode quotes an argument holding a space, yargs parses dashes.
ALPHA = '-v: read the  "README" -v'


@pytest.fixture(scope="session")
def opencode_command(request: pytest.FixtureRequest) -> Path:
    return npm_cli(request, OPENCODE_PACKAGE, OPENCODE_VERSION, "opencode")


def user_texts(call: dict[str, Any]) -> list[str]:
    """The user messages of a chat-completions request, as text."""
    return [
        message["content"]
        if isinstance(message["content"], str)
        else "".join(part.get("text", "") for part in message["content"])
        for message in call["request"]["body"]["messages"]
        if message["role"] == "user"
    ]


def test_opencode_two_tasks_two_turns_tagged_traced_offline_and_never_holding_the_key(
    opencode_command: Path, tmp_path: Path
) -> None:
    ran = run_two_tasks(
        "opencode",
        opencode_command,
        tmp_path,
        model="fake-coder",
        key_env="OPENAI_API_KEY",
        alpha=(ALPHA, "Alpha again"),
    )
    calls = ran.calls
    # A new session's first turn also asks the model for a title (no tools). Every turn: opencode
    # calls the model, runs the tool the fake model asks for (`bash`), calls it again with the result.
    assert [(call["task_id"], call["turn"]) for call in calls] == [
        ("alpha", 1), ("alpha", 1), ("alpha", 1), ("alpha", 2), ("alpha", 2),
        ("beta", 1), ("beta", 1), ("beta", 1), ("beta", 2), ("beta", 2),
    ]  # fmt: skip
    agent_calls = [call for call in calls if call["request"]["body"].get("tools")]
    assert len(agent_calls) == 8
    assert all(call["response"]["status_code"] == 200 and call["error"] is None for call in calls)
    # The prompt reaches the model as written; the follow-up continued opencode's own session.
    assert user_texts(agent_calls[0]) == [ALPHA]
    assert user_texts(agent_calls[2]) == [ALPHA, "Alpha again"]
    assert user_texts(agent_calls[6]) == ["Summarise the README", "Beta again"]

    # The upstream got the real key on every call; nothing else left the machine but opencode's
    # background install of its plugin SDK into ~/.config/opencode (refused here, and harmless).
    posts = [request for request in ran.upstream_saw if request["method"] == "POST"]
    assert len(posts) == len(calls)
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    assert_records_hold_the_fingerprint(ran, "authorization", f"Bearer {CANARY_KEY}")
    assert set(ran.outside_hosts) <= {"registry.npmjs.org:443"}

    # Native traces: one opencode session per task (an extract of its SQLite), both turns in it.
    traces = sorted((ran.run / "traces").rglob("opencode-*.db"))
    assert len(traces) == 2
    rollouts = read_rollouts(*traces, format_name="opencode")
    assert sorted((row["first_user_message"], row["turn_count"]) for row in rollouts) == [
        (ALPHA, 2),
        ("Summarise the README", 2),
    ]
    turns = assert_every_turn_ok(ran.run, traces_per_task=1)
    assert "Done." in (ran.run / turns[0]["stdout"]).read_text()

    # The key was nowhere opencode could look, nor in any file or log.
    environments = assert_credentials_out_of_reach(tmp_path, ran.home, 4, CANARY_KEY)
    assert not any("OPENAI_API_KEY" in environment for environment in environments)  # in opencode.json
    config = ran.home / "alpha" / ".config" / "opencode" / "opencode.json"
    assert config.stat().st_mode & 0o777 == 0o600
