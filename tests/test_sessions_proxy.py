"""Property: a task of several conversations (the main loop, title calls, a compaction, a sub-agent),
recorded through the real proxy in any wire API, comes back as exactly those conversations: every
message, in order, the main one flagged. Then each as an STS session that validates and round-trips.

The agent here speaks each API with plain HTTP (and a WebSocket for Codex-style Responses) and
parses the answers itself, so the only code under test is the recording and the rebuilding.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fake_model_server import FakeModelServer
from helpers import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_harness import ProxyHarness
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage

from exporter.core.record import CaptureRecord
from exporter.export.build.sessions_dataset import session_metadata
from exporter.rollouts.base import Unit
from exporter.rollouts.conversations import conversations
from exporter.rollouts.formats.captures import CapturesFormat
from exporter.rollouts.sts import dumps, loads, rollout_messages, session_lines, validate

API_CASES = [
    "chat",
    "chat-stream",
    "responses",
    "responses-stream",
    "responses-stateful",
    "responses-websocket",
    "messages",
    "messages-stream",
    "completions",
    "gemini",
    "gemini-stream",
]
TOOLS = {
    "chat": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}],
    "responses": [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}],
    "messages": [{"name": "read_file", "input_schema": {"type": "object"}}],
    "gemini": [{"functionDeclarations": [{"name": "read_file"}]}],
}


@dataclass
class Msg:
    role: str
    text: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    call_id: str = ""  # tool messages: the call answered
    response_id: str | None = field(default=None, compare=False)  # Responses answers


class Wire:
    """One API: requests from a neutral history, answers parsed by hand."""

    def __init__(self, case: str, proxy: ProxyHarness, task: str) -> None:
        self.api, _, variant = case.partition("-")
        self.stream = variant in ("stream", "websocket")
        self.stateful = variant == "stateful"
        self.websocket = variant == "websocket"
        self.proxy, self.task = proxy, task

    def path(self, model: str) -> str:
        if self.api == "gemini":
            method = "streamGenerateContent?alt=sse" if self.stream else "generateContent"
            return f"/v1beta/models/{model}:{method}"
        return {"chat": "/v1/chat/completions", "completions": "/v1/completions"}.get(
            self.api, f"/v1/{self.api}"
        )

    def body(self, history: list[Msg], model: str, tools: bool) -> dict[str, Any]:
        system, rest = history[0].text, history[1:]
        if self.api == "chat":
            body: dict[str, Any] = {"model": model, "messages": [chat_message(m) for m in history]}
        elif self.api == "responses":
            body = {
                "model": model,
                "instructions": system,
                "input": [i for m in rest for i in response_items(m)],
            }
        elif self.api == "messages":
            body = {"model": model, "system": system, "max_tokens": 64, "messages": anthropic_messages(rest)}
        elif self.api == "completions":
            return {"model": model, "prompt": completions_prompt(history)}
        else:
            body = {"systemInstruction": {"parts": [{"text": system}]}, "contents": gemini_contents(rest)}
        if tools:
            body["tools"] = TOOLS[self.api]
        if self.stream and self.api != "gemini":
            body["stream"] = True
        return body

    def post(self, model: str, body: dict[str, Any], *, fail: bool = False) -> Msg:
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=30)
        headers = {"content-type": "application/json", "x-agentcap-task": self.task}
        if fail:
            headers["x-fake-scenario"] = "error-500"
        connection.request("POST", self.path(model), json.dumps(body), headers)
        response = connection.getresponse()
        raw = response.read().decode()
        connection.close()
        if fail:
            assert response.status == 500, raw
            return Msg("assistant", "[call failed: HTTP 500: server_error: scripted 500]")
        assert response.status == 200, raw
        return self.parse(raw)

    def parse(self, raw: str) -> Msg:
        if self.stream:
            data = [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")]
            return self.parse_events([json.loads(d) for d in data if d != "[DONE]"])
        body = json.loads(raw)
        if self.api == "chat":
            message = body["choices"][0]["message"]
            calls = [(c["id"], c["function"]["name"]) for c in message.get("tool_calls") or []]
            return Msg("assistant", message.get("content") or "", calls)
        if self.api == "responses":
            return responses_answer(body)
        if self.api == "messages":
            text = "".join(b["text"] for b in body["content"] if b["type"] == "text")
            calls = [(b["id"], b["name"]) for b in body["content"] if b["type"] == "tool_use"]
            return Msg("assistant", text, calls)
        if self.api == "completions":
            return Msg("assistant", body["choices"][0]["text"])
        return gemini_answer([body])

    def parse_events(self, events: list[Any]) -> Msg:
        if self.api == "chat":
            text, calls = "", {}
            for event in events:
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text += delta.get("content") or ""
                    for fragment in delta.get("tool_calls") or []:
                        slot = calls.setdefault(fragment["index"], ["", ""])
                        slot[0] = fragment.get("id") or slot[0]
                        slot[1] = (fragment.get("function") or {}).get("name") or slot[1]
            return Msg("assistant", text, [(i, n) for i, n in calls.values()])
        if self.api == "responses":
            return responses_answer(next(e["response"] for e in events if e["type"] == "response.completed"))
        if self.api == "messages":
            text, calls = "", []
            for event in events:
                if event["type"] == "content_block_start" and event["content_block"]["type"] == "tool_use":
                    calls.append((event["content_block"]["id"], event["content_block"]["name"]))
                elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
                    text += event["delta"]["text"]
            return Msg("assistant", text, calls)
        return gemini_answer(events)


def chat_message(message: Msg) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.call_id, "content": message.text}
    out: dict[str, Any] = {"role": message.role, "content": message.text or None}
    if message.calls:
        out["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": "{}"}}
            for i, n in message.calls
        ]
    return out


def response_items(message: Msg) -> list[dict[str, Any]]:
    if message.role == "user":
        return [{"role": "user", "content": [{"type": "input_text", "text": message.text}]}]
    if message.role == "tool":
        return [{"type": "function_call_output", "call_id": message.call_id, "output": message.text}]
    items: list[dict[str, Any]] = []
    if message.text:
        items.append(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": message.text}],
            }
        )
    items += [{"type": "function_call", "call_id": i, "name": n, "arguments": "{}"} for i, n in message.calls]
    return items


def responses_answer(response: dict[str, Any]) -> Msg:
    text = "".join(
        part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"]
    )
    calls = [(i["call_id"], i["name"]) for i in response["output"] if i["type"] == "function_call"]
    return Msg("assistant", text, calls, response_id=response["id"])


def anthropic_messages(history: list[Msg]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in history:
        if message.role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.call_id, "content": message.text}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.role == "user":
            out.append({"role": "user", "content": message.text})
        else:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
            blocks += [{"type": "tool_use", "id": i, "name": n, "input": {}} for i, n in message.calls]
            out.append({"role": "assistant", "content": blocks})
    return out


def completions_prompt(history: list[Msg]) -> str:
    segments = {"system": "System: {}", "user": "\nUser: {}\nAssistant:", "assistant": "{}"}
    return "".join(segments[m.role].format(m.text) for m in history)


def gemini_contents(history: list[Msg]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in history:
        if message.role == "tool":
            part = {
                "functionResponse": {
                    "name": message.call_id.split("#")[0],
                    "response": {"output": message.text},
                }
            }
            if out and out[-1]["role"] == "user" and "functionResponse" in out[-1]["parts"][0]:
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
        elif message.role == "user":
            out.append({"role": "user", "parts": [{"text": message.text}]})
        else:
            parts: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
            parts += [{"functionCall": {"name": n, "args": {}}} for _, n in message.calls]
            out.append({"role": "model", "parts": parts})
    return out


def gemini_answer(chunks: list[dict[str, Any]]) -> Msg:
    text, calls = "", []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            if "functionCall" in part:
                calls.append((f"{part['functionCall']['name']}#{len(calls)}", part["functionCall"]["name"]))
            elif not part.get("thought"):
                text += part["text"]
    return Msg("assistant", text, calls)


class WebSocketTurns:
    """One Codex-style connection: each call is a `response.create`, the answer its events."""

    def __init__(self, proxy: ProxyHarness, task: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\nx-agentcap-task: {task}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.connection = Connection(ConnectionType.CLIENT)

    def turn(self, body: dict[str, Any]) -> Msg:
        message = json.dumps({"type": "response.create", "response": body})
        self.sock.sendall(self.connection.send(TextMessage(data=message)))
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "response.completed":
            self.connection.receive_data(self.sock.recv(65536))
            events += [json.loads(e.data) for e in self.connection.events() if isinstance(e, TextMessage)]
        return responses_answer(events[-1]["response"])

    def close(self) -> None:
        self.sock.sendall(self.connection.send(CloseConnection(code=1000)))
        self.connection.receive_data(self.sock.recv(65536))
        self.sock.close()


class Agent:
    """One conversation: what it sends, and the transcript it expects back (every message once)."""

    def __init__(self, wire: Wire, system: str, model: str, tools: bool) -> None:
        self.wire, self.model, self.tools = wire, model, tools
        self.history = [Msg("system", system)]
        self.expected: list[Msg] = [Msg("system", system)] if wire.api != "completions" else []
        self.sent = 0  # how much of the history the server already holds (stateful Responses)
        self.previous: str | None = None
        self.calls = 0
        self.socket = WebSocketTurns(wire.proxy, wire.task) if wire.websocket else None
        self.shown = ""  # completions: the prompt text plus answer already shown
        self.retrying = False  # the last call failed: the next one resends it

    def call(self, tools: bool, *, fail: bool = False) -> Msg:
        """One call; `fail`: the server answers 500 and the agent will resend the same request."""
        prompt = completions_prompt(self.history) if self.wire.api == "completions" else ""
        if self.wire.api == "completions" and not self.retrying:
            self.expected.append(
                Msg("user", prompt[len(self.shown) :] if prompt.startswith(self.shown) else prompt)
            )
        self.retrying = fail
        if self.wire.stateful and self.previous:
            body = self.wire.body([self.history[0], *self.history[self.sent :]], self.model, tools)
            body["previous_response_id"] = self.previous
        else:
            body = self.wire.body(self.history, self.model, tools)
        answer = self.socket.turn(body) if self.socket else self.wire.post(self.model, body, fail=fail)
        self.calls += 1
        if fail:  # visible in the conversation, but not part of the history the agent resends
            self.expected.append(answer)
            return answer
        self.previous = answer.response_id  # Responses: what a stateful follow-up names
        self.history.append(answer)
        self.sent = len(self.history)
        self.expected.append(answer)
        if self.wire.api == "completions":
            self.shown = prompt + answer.text
        return answer

    def turn(self, text: str, *, fail_first: bool = False) -> None:
        self.say(Msg("user", text))
        if fail_first:
            self.call(self.tools, fail=True)
        answer = self.call(self.tools)
        if answer.calls:
            for call_id, name in answer.calls:
                self.say(Msg("tool", f"output of {name} for {text}", call_id=call_id))
            self.call(False)  # without tools the fake model answers in words: the turn ends

    def say(self, message: Msg) -> None:
        self.history.append(message)
        if self.wire.api != "completions":
            self.expected.append(message)

    def compact(self, summary: str) -> None:
        """Replace the history by the first prompt and a summary, as agents do when the window fills."""
        self.history = self.history[:2]
        self.sent, self.previous = 0, None
        self.shown = completions_prompt(self.history)
        self.turn(summary)

    def close(self) -> None:
        if self.socket:
            self.socket.close()


@st.composite
def plans(draw: st.DrawFn, case: str) -> dict[str, Any]:
    turns = draw(st.integers(2 if case == "completions" else 1, 3))
    return {
        "turns": turns,
        "titles": draw(st.lists(st.integers(0, turns - 1), max_size=2)),
        "compact_after": draw(st.none() | st.integers(1, turns)),
        "subagent_after": draw(st.none() | st.integers(1, turns)),
        # a call answered 500, then retried (a WebSocket turn cannot get an HTTP status)
        "fail_turn": None if case.endswith("websocket") else draw(st.none() | st.integers(1, turns)),
    }


def run_plan(wire: Wire, plan: dict[str, Any]) -> list[tuple[Agent, bool]]:
    """Play the plan; returns every conversation (in order of its first call) and whether it is the main one."""
    tools = wire.api != "completions"
    model = "gemini-main" if wire.api == "gemini" else "org/big"
    main = Agent(wire, "You are a coding agent.", model, tools)
    started: list[tuple[Agent, bool]] = [(main, True)]
    for number in range(1, plan["turns"] + 1):
        main.turn(f"step {number}: fix file {number}", fail_first=plan["fail_turn"] == number)
        for copy in range(plan["titles"].count(number - 1)):
            # (an identical request again would be a retry: the same conversation, a second answer)
            title = Agent(wire, "Write a title of at most 5 words.", "tiny-model", tools=False)
            title.say(Msg("user", f"Conversation so far: step {number} (title {copy + 1})"))
            title.call(False)
            title.close()
            started.append((title, False))
        if plan["subagent_after"] == number:
            helper = Agent(wire, "You are a sub-agent that reads code.", model, tools)
            started.append((helper, False))
            helper.turn(f"look at file {number} for the main agent")
            if not tools:
                helper.turn("and the next one")
            helper.close()
        if plan["compact_after"] == number:
            main.compact(f"Summary of steps 1-{number}; carry on")
    main.close()
    return started


def normalized(message: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    calls = tuple(call["function"]["name"] for call in message["tool_calls"])
    return message["role"], (message["content"] or "").strip(), calls


def expected_message(message: Msg, api: str) -> tuple[str, str, tuple[str, ...]]:
    text = message.text
    if message.role == "tool" and api == "gemini":
        text = json.dumps({"output": text}, ensure_ascii=False)
    return message.role, text.strip(), tuple(name for _, name in message.calls)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def records_of(proxy: ProxyHarness, task: str, count: int) -> list[CaptureRecord]:
    """The task's records once the proxy's writer has written all `count` of them (it writes as calls end;
    a line it is still writing is not read)."""

    def written() -> list[CaptureRecord]:
        records = []
        for run_dir in proxy.run_dirs():
            path = run_dir / "captures.jsonl"
            text = path.read_bytes() if path.exists() else b""
            lines = text[: text.rfind(b"\n") + 1].splitlines()
            records += [msgspec.json.decode(line, type=CaptureRecord) for line in lines if line]
        ours = sorted((r for r in records if r.task_id == task), key=lambda r: r.seq)
        return ours if len(ours) >= count else []

    return wait_for(written, what=f"{count} records of {task}")


@pytest.mark.parametrize("case", API_CASES)
def test_every_conversation_comes_back_whole(case: str, upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:

        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
        @given(plan=plans(case))
        def check(plan: dict[str, Any]) -> None:
            task = "t-" + uuid.uuid4().hex[:8]
            wire = Wire(case, proxy, task)
            played = run_plan(wire, plan)
            connections = len(played) if wire.websocket else sum(agent.calls for agent, _ in played)
            chains = conversations(records_of(proxy, task, connections))
            assert [[normalized(m) for m in chain.messages] for chain in chains] == [
                [expected_message(m, wire.api) for m in agent.expected] for agent, _ in played
            ]
            assert [not chain.is_sidechain for chain in chains] == [is_main for _, is_main in played]
            assert [len(chain.calls) for chain in chains] == [agent.calls for agent, _ in played]

        check()
    # The same run as sessions: every STS file validates and round-trips through a rollout row.
    [run_dir] = proxy.run_dirs()
    rows = [r.to_row() for r in CapturesFormat().hydrate(Unit("captures", run_dir / "captures.jsonl", "x"))]
    for row in rows:
        row["source_path"] = f"{run_dir.name}/captures.jsonl"
        text = dumps(session_lines(row, session_metadata(row)))
        assert validate(text) == []
        lines = loads(text)
        again = dict(row, messages=rollout_messages(lines))
        assert loads(dumps(session_lines(again, session_metadata(row)))) == lines
