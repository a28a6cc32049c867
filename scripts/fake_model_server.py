"""A loopback fake model server speaking the OpenAI and Anthropic wire formats.

Used by the demo, the tests and the benchmarks. It answers:

- POST /v1/chat/completions (and /chat/completions): JSON or SSE (`"stream": true`)
- POST /v1/responses: JSON or SSE
- POST /v1/messages: JSON or SSE (Anthropic)
- POST /v1/completions: JSON
- POST /v1beta/models/<model>:generateContent: JSON (Gemini); :streamGenerateContent: SSE with
  `?alt=sse`, else a JSON array of the chunks
- GET  /v1/responses with a WebSocket upgrade: the Responses API over a WebSocket (as Codex uses it)
- GET  /v1/models, GET /health: small JSON
- anything else: 404

Replies are scripted so a tool-use loop terminates: when the request offers tools and the
last message is from the user, the assistant calls the first tool; once a tool result is
present (a Responses `function_call_output`, an Anthropic `tool_result`, a Gemini
`functionResponse` last), it answers in text.

A request header `x-fake-scenario` picks a behaviour for tests: `echo` (returns the path and
headers it received), `error-500`, `error-429`, `error-401` (with a `WWW-Authenticate` challenge
that carries a fake token), `reset` (stream cut mid-way), `hang-up` (reads the request, then closes
the connection without answering), `slow` (pauses `x-fake-delay` seconds between chunks), `gzip` /
`zstd` / `br` (compressed response), `cr-lines` (SSE lines ended by a bare CR), `invalid-utf8`,
`not-json` (text/plain body), `big` (`x-fake-size` bytes of content).
Headers `x-served-by` and `x-build-info` are always sent, so fingerprints can be tested.
A request header `x-fake-usage: detailed` makes every usage object report cached, cache-write and
reasoning tokens in its API's own shape (see `DETAILED_USAGE`), streamed or not.
Every request's method, path and headers (names lowercased) are kept in order
(`FakeModelServer.seen`), so tests can check what reached the upstream (the real key, no tag header).

Run it alone: python scripts/fake_model_server.py --port 8001
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mitmproxy.net import encoding as content_encoding

MODEL_ECHO_SUFFIX = "-2026-08-07"
# An obviously fake token the upstream itself sends (scenario error-401): tests check it never reaches the disk.
CHALLENGE_TOKEN = "sk-test-canary-upstream-challenge-0000"
SERVED_BY = "fake-edge-1"
BUILD_INFO = "fake-build-42"


def compress(body: bytes, encoding: str) -> bytes:
    # mitmproxy's own codec table: the same zstd/brotli/gzip implementations the addon decodes with.
    return content_encoding.encode(body, encoding)


def decompress_request(body: bytes, encoding: str | None) -> bytes:
    if not encoding:
        return body
    decoded = content_encoding.decode(body, encoding)
    if not isinstance(decoded, bytes):
        raise ValueError(f"unsupported request content-encoding {encoding}")
    return decoded


def last_message_role(messages: list[dict[str, Any]]) -> str:
    return messages[-1].get("role", "user") if messages else "user"


def first_tool_name(tools: list[dict[str, Any]]) -> str:
    tool = tools[0]
    return tool.get("function", {}).get("name") or tool.get("name") or "tool"


def reply_text(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    user_turns = sum(1 for m in messages if m.get("role") == "user")
    return f"Done. Answer number {user_turns} for you: héllo wörld ✓."


def is_tool_output(message: Any) -> bool:
    """A Responses `function_call_output` item, or an Anthropic user turn carrying `tool_result` blocks."""
    if not isinstance(message, dict):
        return False
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return message.get("type") == "function_call_output" or any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in blocks
    )


def wants_tool_call(request: dict[str, Any]) -> bool:
    """Tools offered, the user spoke last and no tool has answered yet: one tool call per conversation."""
    tools = request.get("tools") or []
    messages = request.get("messages") or request.get("input") or []
    if isinstance(messages, str):
        return bool(tools)
    return (
        bool(tools)
        and last_message_role(messages) == "user"
        and not any(is_tool_output(message) for message in messages)
    )


# ---------------------------------------------------------------- chat completions
def chat_completion(request: dict[str, Any]) -> dict[str, Any]:
    model = request.get("model", "fake") + MODEL_ECHO_SUFFIX
    if wants_tool_call(request):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_" + uuid.uuid4().hex[:12],
                    "type": "function",
                    "function": {
                        "name": first_tool_name(request["tools"]),
                        "arguments": json.dumps({"path": "README.md"}),
                    },
                }
            ],
        }
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": reply_text(request)}
        finish = "stop"
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chat_completion_events(request: dict[str, Any]) -> Iterator[str]:
    full = chat_completion(request)
    base = {k: full[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    message = full["choices"][0]["message"]
    yield json.dumps(base | {"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        args = call["function"]["arguments"]
        head = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"]},
        }
        head["function"]["arguments"] = ""
        yield json.dumps(base | {"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            yield json.dumps(base | {"choices": [{"index": 0, "delta": delta}]})
    else:
        for word in message["content"].split(" "):
            yield json.dumps(
                base | {"choices": [{"index": 0, "delta": {"content": word + " "}}]}, ensure_ascii=False
            )
    finish = full["choices"][0]["finish_reason"]
    yield json.dumps(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (request.get("stream_options") or {}).get("include_usage"):
        yield json.dumps(base | {"choices": [], "usage": full["usage"]})
    yield "[DONE]"


# ---------------------------------------------------------------- responses API
def responses_result(request: dict[str, Any]) -> dict[str, Any]:
    model = request.get("model", "fake") + MODEL_ECHO_SUFFIX
    if wants_tool_call(request):
        output = [
            {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:12],
                "call_id": "call_" + uuid.uuid4().hex[:12],
                "name": first_tool_name(request["tools"]),
                "arguments": json.dumps({"path": "README.md"}),
                "status": "completed",
            }
        ]
    else:
        output = [
            {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex[:12],
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Responses API says hi.", "annotations": []}],
            }
        ]
    return {
        "id": "resp_" + uuid.uuid4().hex[:16],
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "usage": {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14},
    }


def responses_events(request: dict[str, Any]) -> Iterator[tuple[str, str]]:
    full = responses_result(request)
    created = full | {"status": "in_progress", "output": [], "usage": None}
    yield "response.created", json.dumps({"type": "response.created", "response": created})
    for index, item in enumerate(full["output"]):
        yield (
            "response.output_item.added",
            json.dumps({"type": "response.output_item.added", "output_index": index, "item": item}),
        )
        if item["type"] == "message":
            text = item["content"][0]["text"]
            for piece in (text[:8], text[8:]):
                yield (
                    "response.output_text.delta",
                    json.dumps({"type": "response.output_text.delta", "output_index": index, "delta": piece}),
                )
        yield (
            "response.output_item.done",
            json.dumps({"type": "response.output_item.done", "output_index": index, "item": item}),
        )
    yield "response.completed", json.dumps({"type": "response.completed", "response": full})


# ---------------------------------------------------------------- anthropic messages
def anthropic_message(request: dict[str, Any]) -> dict[str, Any]:
    model = request.get("model", "fake") + MODEL_ECHO_SUFFIX
    if wants_tool_call(request):
        content = [
            {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:12],
                "name": first_tool_name(request["tools"]),
                "input": {"path": "README.md"},
            }
        ]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": "Claude-shaped hello."}]
        stop = "end_turn"
    return {
        "id": "msg_" + uuid.uuid4().hex[:16],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": 6},
    }


def anthropic_events(request: dict[str, Any]) -> Iterator[tuple[str, str]]:
    full = anthropic_message(request)
    start = full | {"content": [], "stop_reason": None, "usage": {"input_tokens": 13, "output_tokens": 1}}
    yield "message_start", json.dumps({"type": "message_start", "message": start})
    yield "ping", json.dumps({"type": "ping"})
    for index, block in enumerate(full["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                json.dumps(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
            )
            yield (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    }
                ),
            )
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield (
                "content_block_start",
                json.dumps({"type": "content_block_start", "index": index, "content_block": head}),
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield (
                "content_block_delta",
                json.dumps({"type": "content_block_delta", "index": index, "delta": delta}),
            )
        yield "content_block_stop", json.dumps({"type": "content_block_stop", "index": index})
    yield (
        "message_delta",
        json.dumps(
            {
                "type": "message_delta",
                "delta": {"stop_reason": full["stop_reason"]},
                "usage": {"output_tokens": 6},
            }
        ),
    )
    yield "message_stop", json.dumps({"type": "message_stop"})


def legacy_completion(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "cmpl-" + uuid.uuid4().hex[:16],
        "object": "text_completion",
        "model": request.get("model", "fake") + MODEL_ECHO_SUFFIX,
        "choices": [{"index": 0, "text": " completed text", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


# ---------------------------------------------------------------- detailed usage (x-fake-usage)
# Usage objects as each provider reports prompt caching and reasoning, swapped in for the plain ones
# when a request asks for them; the numbers are distinct so a test can tell every counter apart.
DETAILED_USAGE: dict[str, dict[str, Any]] = {
    "chat": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 256},
    },
    "responses": {
        "input_tokens": 900,
        "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 128},
        "output_tokens": 120,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 1020,
    },
    # Anthropic: message_start carries the input side, message_delta the final output (cumulative).
    "messages_start": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
        "output_tokens": 1,
    },
    "messages_delta": {"output_tokens": 300, "output_tokens_details": {"thinking_tokens": 120}},
    # Gemini's usageMetadata (camelCase; thoughts counted apart from the candidates).
    "gemini": {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 600,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 100,
        "toolUsePromptTokenCount": 10,
        "totalTokenCount": 1150,
    },
}
DETAILED_USAGE["messages"] = DETAILED_USAGE["messages_start"] | DETAILED_USAGE["messages_delta"]


def detailed_usage(payload: Any) -> Any:
    """`payload` (a body, a list of chunks or one stream event) with its usage swapped for the detailed one."""
    if isinstance(payload, list):
        return [detailed_usage(item) for item in payload]
    if not isinstance(payload, dict):
        return payload
    if isinstance(payload.get("usageMetadata"), dict):
        payload["usageMetadata"] = DETAILED_USAGE["gemini"]
        return payload
    holder = payload.get("response") or payload.get("message") or payload
    usage = holder.get("usage") if isinstance(holder, dict) else None
    if not isinstance(usage, dict):
        return payload
    if "prompt_tokens" in usage:
        kind = "chat"
    elif "total_tokens" in usage:
        kind = "responses"
    else:
        kind = {"message_start": "messages_start", "message_delta": "messages_delta"}.get(
            payload.get("type"), "messages"
        )
    holder["usage"] = DETAILED_USAGE[kind]
    return payload


def detailed_event(event: bytes) -> bytes:
    """One SSE event with the detailed usage in its `data:` JSON (other lines kept as they are)."""
    lines = event.decode().split("\n")
    for index, line in enumerate(lines):
        if line.startswith("data: {"):
            body, end = (line[6:-1], "\r") if line.endswith("\r") else (line[6:], "")
            lines[index] = "data: " + json.dumps(detailed_usage(json.loads(body)), ensure_ascii=False) + end
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- Gemini generateContent
GEMINI_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")


def gemini_wants_tool_call(request: dict[str, Any]) -> bool:
    """Tools offered and the last turn is the user's own words (not a function response)."""
    contents = request.get("contents") or []
    last = contents[-1] if contents and isinstance(contents[-1], dict) else {}
    answered = any("functionResponse" in part for part in last.get("parts") or [])
    return bool(request.get("tools")) and last.get("role", "user") == "user" and not answered


def gemini_parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    if gemini_wants_tool_call(request):
        declaration = request["tools"][0].get("functionDeclarations") or [{"name": "tool"}]
        return [{"functionCall": {"name": declaration[0]["name"], "args": {"path": "README.md"}}}]
    return [{"text": "Thinking it over.", "thought": True}, {"text": "Gemini says héllo ✓."}]


def gemini_chunks(request: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The answer as stream chunks: text split in two, the last chunk with finishReason and usage."""
    meta = {"modelVersion": model + MODEL_ECHO_SUFFIX, "responseId": uuid.uuid4().hex[:16]}
    parts = gemini_parts(request)
    pieces = [[part] for part in parts]
    if parts[-1].get("text") and not parts[-1].get("thought"):
        text = parts[-1]["text"]
        pieces[-1:] = [[{"text": text[:6]}], [{"text": text[6:]}]]
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": piece}, "index": 0}]} | meta
        for piece in pieces
    ]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = {
        "promptTokenCount": 7,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 2,
        "totalTokenCount": 13,
    }
    return chunks


def gemini_response(request: dict[str, Any], model: str) -> dict[str, Any]:
    """The whole answer at once: the last chunk's metadata with every part."""
    response = gemini_chunks(request, model)[-1]
    response["candidates"][0]["content"]["parts"] = gemini_parts(request)
    return response


def normalise_path(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    return path[3:] if path.startswith("/v1/") else path


class FakeModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeModel/1.0"
    # Headers and body go out in separate small writes; with Nagle on, each call waits ~40 ms for a
    # delayed ACK and benchmarks would time TCP instead of the proxy.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        pass

    # ------------------------------------------------------------ plumbing
    def send_head(self, status: int, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("x-served-by", SERVED_BY)
        self.send_header("x-build-info", BUILD_INFO)
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def send_json(
        self, status: int, payload: Any, encoding: str | None = None, extra: dict[str, str] | None = None
    ) -> None:
        if self.headers.get("x-fake-usage") == "detailed":
            payload = detailed_usage(payload)
        body = json.dumps(payload, ensure_ascii=False).encode()
        extra = dict(extra or {})
        if encoding:
            body = compress(body, encoding)
            extra["content-encoding"] = encoding
        extra["content-length"] = str(len(body))
        self.send_head(status, "application/json", extra)
        self.end_headers()
        self.wfile.write(body)

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def send_stream(self, events: list[bytes], scenario: str) -> None:
        if self.headers.get("x-fake-usage") == "detailed":
            events = [detailed_event(event) for event in events]
        encoding = scenario if scenario in ("gzip", "zstd", "br") else None
        extra = {"transfer-encoding": "chunked", "cache-control": "no-cache"}
        if encoding:
            extra["content-encoding"] = encoding
            events = [compress(b"".join(events), encoding)]
        self.send_head(200, "text/event-stream; charset=utf-8", extra)
        self.end_headers()
        delay = float(self.headers.get("x-fake-delay", "0.5"))
        for index, event in enumerate(events):
            if scenario == "reset" and index == len(events) // 2:
                # Cut the connection mid-body: no terminating chunk.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if scenario == "slow" and index:
                time.sleep(delay)
            self.send_chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def serve_responses_websocket(self) -> None:
        """Responses API over a WebSocket, as Codex speaks it: one `response.create` in, events out."""
        from wsproto.connection import Connection, ConnectionType
        from wsproto.events import CloseConnection, TextMessage
        from wsproto.utilities import generate_accept_token

        accept = generate_accept_token(self.headers["sec-websocket-key"].encode()).decode()
        self.send_head(101, "application/octet-stream", {"upgrade": "websocket", "connection": "Upgrade"})
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        connection = Connection(ConnectionType.SERVER)
        text = ""
        while True:
            data = self.connection.recv(65536)
            if not data:
                break
            connection.receive_data(data)
            for event in connection.events():
                if isinstance(event, TextMessage):
                    text += event.data
                    if not event.message_finished:
                        continue
                    request = json.loads(text).get("response", {}) | {"stream": True}
                    text = ""
                    for _, payload in responses_events(request):
                        self.connection.sendall(connection.send(TextMessage(data=payload)))
                elif isinstance(event, CloseConnection):
                    self.connection.sendall(connection.send(event.response()))
                    self.close_connection = True
                    return

    # ------------------------------------------------------------ handlers
    def do_GET(self) -> None:
        self.server.note(self)  # type: ignore[attr-defined]
        path = normalise_path(self.path)
        if path == "/responses" and self.headers.get("upgrade", "").lower() == "websocket":
            self.serve_responses_websocket()
            return
        if path in ("/models", "/health"):
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        self.server.note(self)  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        scenario = self.headers.get("x-fake-scenario", "")
        path = normalise_path(self.path)
        try:
            request = json.loads(decompress_request(raw, self.headers.get("content-encoding")) or b"{}")
        except ValueError as exc:
            self.send_json(400, {"error": {"message": f"bad request body: {exc}"}})
            return
        if scenario == "echo":
            # Lets tests see exactly what reached the upstream (tag headers must not).
            self.send_json(
                200, {"path": self.path, "headers": dict(self.headers.items()), "request": request}
            )
            return
        if scenario == "hang-up":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if scenario == "error-401":
            challenge = f'Bearer realm="fake", error="invalid_token", token="{CHALLENGE_TOKEN}"'
            self.send_json(401, {"error": {"message": "bad key"}}, extra={"www-authenticate": challenge})
            return
        if scenario in ("error-500", "error-429"):
            status = int(scenario.split("-")[1])
            self.send_json(status, {"error": {"message": f"scripted {status}", "type": "server_error"}})
            return
        if scenario == "not-json":
            body = b"plain text, not json"
            self.send_head(200, "text/plain", {"content-length": str(len(body))})
            self.end_headers()
            self.wfile.write(body)
            return
        if scenario == "big":
            size = int(self.headers.get("x-fake-size", "1000000"))
            request = request | {"messages": [{"role": "user", "content": "x"}]}
            payload = chat_completion(request)
            payload["choices"][0]["message"]["content"] = "y" * size
            self.send_json(200, payload)
            return
        encoding = scenario if scenario in ("gzip", "zstd", "br") else None
        stream = bool(request.get("stream"))
        gemini = GEMINI_PATH.search(path)
        if gemini:
            model, method = gemini.groups()
            if method == "generateContent":
                self.send_json(200, gemini_response(request, model), encoding)
            elif "alt=sse" in self.path:
                chunks = gemini_chunks(request, model)
                self.send_stream(
                    [f"data: {json.dumps(c, ensure_ascii=False)}\r\n\r\n".encode() for c in chunks], scenario
                )
            else:
                self.send_json(200, gemini_chunks(request, model), encoding)
        elif path == "/chat/completions":
            if stream:
                events = [f"data: {data}\n\n".encode() for data in chat_completion_events(request)]
                if scenario == "invalid-utf8":
                    events.insert(1, b'data: {"bad": "\xff\xfe"}\n\n')
                if scenario == "cr-lines":
                    events = [event.replace(b"\n", b"\r") for event in events]
                self.send_stream([b": keep-alive\n\n", *events], scenario)
            else:
                self.send_json(200, chat_completion(request), encoding)
        elif path == "/responses":
            if stream:
                events = [
                    f"event: {name}\ndata: {data}\n\n".encode() for name, data in responses_events(request)
                ]
                self.send_stream(events, scenario)
            else:
                self.send_json(200, responses_result(request), encoding)
        elif path == "/messages":
            if stream:
                events = [
                    f"event: {name}\ndata: {data}\n\n".encode() for name, data in anthropic_events(request)
                ]
                self.send_stream(events, scenario)
            else:
                self.send_json(200, anthropic_message(request), encoding)
        elif path == "/completions":
            self.send_json(200, legacy_completion(request), encoding)
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})


class BackloggedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 resets connections when agents fan out

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.seen: list[dict[str, Any]] = []
        self.seen_changed = threading.Condition()

    def note(self, request: BaseHTTPRequestHandler) -> None:
        with self.seen_changed:
            self.seen.append(
                {
                    "method": request.command,
                    "path": request.path,
                    "headers": {name.lower(): value for name, value in request.headers.items()},
                }
            )
            self.seen_changed.notify_all()


class FakeModelServer:
    """Start/stop wrapper: `with FakeModelServer() as server: server.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = BackloggedServer((host, port), FakeModelHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def seen(self) -> list[dict[str, Any]]:
        """Every request so far: {method, path, headers}."""
        with self.httpd.seen_changed:
            return list(self.httpd.seen)

    def wait_for_requests(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self.httpd.seen_changed:
            if not self.httpd.seen_changed.wait_for(lambda: len(self.httpd.seen) >= count, timeout):
                raise TimeoutError(f"the fake server saw {len(self.httpd.seen)} request(s), not {count}")
            return list(self.httpd.seen)

    def start(self) -> FakeModelServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    server = FakeModelServer(args.host, args.port)
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(str(server.httpd.server_address[1]))
    print(f"fake model server listening at {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
