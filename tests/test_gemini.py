"""Gemini (`generateContent` / `streamGenerateContent?alt=sse`) driven by the real google-genai client
through the proxy: recorded by default, decoded by the wire layer, inspect, rollouts and sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from factories import CANARY_KEY, typed
from fake_model_server import FakeModelServer
from google import genai
from google.genai import types
from proxy_harness import ProxyHarness

from exporter.inspect.calls import Call, MessageStore, label_calls
from exporter.rollouts.conversations import conversations
from exporter.rollouts.rollout import Rollout
from exporter.rollouts.sts import dumps, session_lines, validate
from exporter.shared.wire import GEMINI, decode_record


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """A tool loop (call, function response, answer) and a streamed one-off, through the proxy."""
    root = tmp_path_factory.mktemp("gemini")
    # Default options: the paths are recorded and the `x-goog-api-key` header redacted out of the box.
    with FakeModelServer() as upstream, ProxyHarness(upstream.url, root / "runs") as proxy:
        client = genai.Client(
            api_key=CANARY_KEY,
            http_options=types.HttpOptions(base_url=proxy.url, headers={"x-agentcap-task": "gem"}),
        )
        tool = types.Tool(
            function_declarations=[types.FunctionDeclaration(name="read_file", description="Read a file")]
        )
        config = types.GenerateContentConfig(
            tools=[tool],
            system_instruction="You are a coding agent.",
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        history: list[Any] = [types.Content(role="user", parts=[types.Part(text="What is in README.md?")])]
        first = client.models.generate_content(model="gemini-test", contents=history, config=config)
        [call] = first.function_calls or []
        assert (call.name, call.args) == ("read_file", {"path": "README.md"})
        history += [
            first.candidates[0].content,
            types.Content(
                role="user",
                parts=[types.Part.from_function_response(name="read_file", response={"output": "# Hi"})],
            ),
        ]
        second = client.models.generate_content(
            model="gemini-test",
            contents=history,
            config=types.GenerateContentConfig(system_instruction="You are a coding agent."),
        )
        assert second.text == "Gemini says héllo ✓."
        chunks = list(client.models.generate_content_stream(model="gemini-flash", contents="Name this chat"))
        assert "".join(c.text or "" for c in chunks) == "Gemini says héllo ✓."
        proxy.stop()
        records = proxy.records()
        for path in (root / "runs").rglob("*"):
            if path.is_file():
                assert CANARY_KEY.encode() not in path.read_bytes(), f"the key leaked into {path}"
        yield records


def test_recorded_by_default_and_decoded(recorded: list[dict[str, Any]]) -> None:
    assert [(r["api"], r["response"]["stream"]) for r in recorded] == [
        (GEMINI, False),
        (GEMINI, False),
        (GEMINI, True),
    ]
    assert recorded[2]["url"].endswith("/models/gemini-flash:streamGenerateContent?alt=sse")
    first, second, streamed = (decode_record(r) for r in recorded)
    assert (first.finish_reason, [(c.name, json.loads(c.arguments)) for c in first.tool_calls]) == (
        "tool_calls",
        [("read_file", {"path": "README.md"})],
    )
    assert (second.content, second.reasoning, second.model) == (
        "Gemini says héllo ✓.",
        "Thinking it over.",
        "gemini-test-2026-08-07",
    )
    assert (streamed.content, streamed.finish_reason, streamed.problems) == (
        "Gemini says héllo ✓.",
        "stop",
        [],
    )
    assert streamed.usage == {
        "promptTokenCount": 7,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 2,
        "totalTokenCount": 13,
    }


def test_inspect_rollouts_and_sessions_read_it(recorded: list[dict[str, Any]]) -> None:
    store = MessageStore()
    calls = label_calls([Call.from_record(typed(r), store) for r in recorded])
    assert [(c.change.label, c.sidechain) for c in calls] == [
        ("init 2", False),
        ("+2", False),
        ("init 1", True),
    ]
    main, one_off = conversations(typed(r) for r in recorded)
    assert [
        (m["role"], m["content"], [t["function"]["name"] for t in m["tool_calls"]]) for m in main.messages
    ] == [
        ("system", "You are a coding agent.", []),
        ("user", "What is in README.md?", []),
        ("assistant", "", ["read_file"]),
        ("tool", '{"output": "# Hi"}', []),
        ("assistant", "Gemini says héllo ✓.", []),
    ]
    assert main.messages[-1]["reasoning_content"] == "Thinking it over."
    assert main.messages[2]["tool_calls"][0]["id"] == main.messages[3]["tool_call_id"] == "read_file#0"
    assert (main.models, main.usage.input_tokens, main.usage.reasoning_tokens) == (
        ["gemini-test-2026-08-07"],
        14,
        4,
    )
    assert (one_off.is_sidechain, one_off.models) == (True, ["gemini-flash-2026-08-07"])
    row = Rollout(
        agent="tester", source_kind="captures", source_path="r/x", session_id="s", messages=main.messages
    ).to_row()
    text = dumps(session_lines(row, {}))
    assert validate(text) == []
