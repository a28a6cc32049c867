"""Wire formats: SSE parsing, response decoding (3 APIs, bodies and streams), request messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from factories import make_record, sse_chat_stream
from fake_model_server import (
    anthropic_events,
    anthropic_message,
    chat_completion,
    chat_completion_events,
    legacy_completion,
    responses_events,
    responses_result,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_vectors import SSE_CASES

from exporter.shared.wire import (
    DecodedResponse,
    SseEvent,
    decode_record,
    decode_response,
    parse_sse,
    request_messages,
)

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]


def sse(*events: tuple[str | None, Any]) -> str:
    """An SSE body from (event name, payload) pairs; payloads that are not strings become JSON."""
    out = []
    for name, payload in events:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(out)


def streamed(raw: str) -> dict[str, Any]:
    return {"status_code": 200, "headers": [], "stream": True, "raw": raw}


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "model": "m-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    } | extra


# ---------------------------------------------------------------- parse_sse


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SSE_CASES], ids=[c[0] for c in SSE_CASES])
def test_parse_sse(text: str, expected: list[tuple[str | None, str]]) -> None:
    assert list(parse_sse(text)) == [SseEvent(name, data) for name, data in expected]


# ---------------------------------------------------------------- decode_response: the real generators


def fake_server_cases() -> list[tuple[str, dict[str, Any], str, dict[str, Any]]]:
    """(id, response object, api, expected fields) from the fake model server's own generators."""
    text_request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    tool_request = text_request | {"tools": TOOLS, "stream_options": {"include_usage": True}}
    responses_request = {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "read_file"}]}
    args = json.dumps({"path": "README.md"})
    cases = []
    chat = chat_completion(tool_request)
    call_id = chat["choices"][0]["message"]["tool_calls"][0]["id"]
    cases.append(
        (
            "chat body tool call",
            {"status_code": 200, "headers": [], "body": chat},
            "chat.completions",
            {"tool_calls": [(call_id, "read_file", args)], "finish_reason": "tool_calls", "content": ""},
        )
    )
    raw = "".join(f"data: {data}\n\n" for data in chat_completion_events(tool_request))
    call_id = json.loads(raw.split("data: ")[2])["choices"][0]["delta"]["tool_calls"][0]["id"]
    cases.append(
        (
            "chat stream tool call",
            streamed(raw),
            "chat.completions",
            {
                "tool_calls": [(call_id, "read_file", args)],
                "finish_reason": "tool_calls",
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            },
        )
    )
    raw = "".join(f"data: {data}\n\n" for data in chat_completion_events(text_request))
    cases.append(
        (
            "chat stream text",
            streamed(raw),
            "chat.completions",
            {
                "content": chat_completion(text_request)["choices"][0]["message"]["content"] + " ",
                "finish_reason": "stop",
                "model": "m-2026-08-07",
            },
        )
    )
    result = responses_result(responses_request)
    cases.append(
        (
            "responses body tool call",
            result,
            "responses",
            {
                "tool_calls": [(result["output"][0]["call_id"], "read_file", args)],
                "finish_reason": "tool_calls",
                "usage": {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14},
            },
        )
    )
    raw = "".join(f"event: {n}\ndata: {d}\n\n" for n, d in responses_events({"model": "m", "input": "hi"}))
    cases.append(
        (
            "responses stream text",
            streamed(raw),
            "responses",
            {"content": "Responses API says hi.", "finish_reason": "stop", "model": "m-2026-08-07"},
        )
    )
    message = anthropic_message(tool_request)
    cases.append(
        (
            "anthropic body tool call",
            message,
            "messages",
            # An Anthropic `input` object becomes compact JSON text (exporter.core.values.arguments_json).
            {
                "tool_calls": [(message["content"][0]["id"], "read_file", '{"path":"README.md"}')],
                "finish_reason": "tool_calls",
            },
        )
    )
    raw = "".join(f"event: {n}\ndata: {d}\n\n" for n, d in anthropic_events(tool_request))
    # ids are minted per call, so read this one back from the stream
    start = next(e for e in parse_sse(raw) if e.event == "content_block_start")
    tool_id = json.loads(start.data)["content_block"]["id"]
    cases.append(
        (
            "anthropic stream tool call",
            streamed(raw),
            "messages",
            {
                "tool_calls": [(tool_id, "read_file", args)],
                "finish_reason": "tool_calls",
                "usage": {"input_tokens": 13, "output_tokens": 6},
            },
        )
    )
    raw = "".join(f"event: {n}\ndata: {d}\n\n" for n, d in anthropic_events(text_request))
    cases.append(
        (
            "anthropic stream text",
            streamed(raw),
            "messages",
            {"content": "Claude-shaped hello.", "finish_reason": "stop"},
        )
    )
    cases.append(
        (
            "legacy completion",
            legacy_completion({"model": "m"}),
            "completions",
            {"content": " completed text", "finish_reason": "stop"},
        )
    )
    return cases


def check(decoded: DecodedResponse, expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key == "tool_calls":
            assert [(c.id, c.name, c.arguments) for c in decoded.tool_calls] == value
        else:
            assert getattr(decoded, key) == value, key


@pytest.mark.parametrize("detect", [False, True], ids=["api given", "api detected"])
@pytest.mark.parametrize("case", fake_server_cases(), ids=lambda c: c[0])
def test_decode_fake_server_output(case: tuple, detect: bool) -> None:
    _, response, api, expected = case
    decoded = decode_response(response, None if detect else api)
    assert decoded.api == api
    assert decoded.problems == []
    check(decoded, expected)


# ---------------------------------------------------------------- decode_response: hand-written edge cases

CHAT_TWO_TOOLS_INTERLEAVED = sse(
    (None, chat_chunk({"role": "assistant", "reasoning_content": "think "})),
    (None, chat_chunk({"reasoning_content": "hard"})),
    (
        None,
        chat_chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f"}}]}),
    ),
    (
        None,
        chat_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y"'}}]}),
    ),
    (None, chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":1}'}}]})),
    (None, chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]})),
    (None, chat_chunk({}, "tool_calls")),
    (None, "[DONE]"),
)

EDGE_CASES: list[tuple[str, dict[str, Any] | None, str | None, dict[str, Any]]] = [
    (
        "chat tool calls interleaved by index",
        streamed(CHAT_TWO_TOOLS_INTERLEAVED),
        None,
        {
            "api": "chat.completions",
            "reasoning": "think hard",
            "finish_reason": "tool_calls",
            "problems": [],
            "tool_calls": [("a", "f", '{"x":1}'), ("b", "g", '{"y":2}')],
        },
    ),
    (
        "chat tool calls without index",
        streamed(
            sse(
                (
                    None,
                    chat_chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
                ),
                (
                    None,
                    chat_chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{"}}]}),
                ),
                (None, chat_chunk({"tool_calls": [{"function": {"arguments": "}"}}]})),
                (None, "[DONE]"),
            )
        ),
        "chat.completions",
        {"tool_calls": [("a", "f", "{}"), ("b", "g", "{}")], "problems": []},
    ),
    (
        "chat reasoning key (openrouter)",
        streamed(
            sse(
                (None, chat_chunk({"reasoning": "r"})),
                (None, chat_chunk({"content": "c"}, "stop")),
                (None, "[DONE]"),
            )
        ),
        None,
        {"reasoning": "r", "content": "c", "finish_reason": "stop"},
    ),
    (
        "chat stream cut off",
        streamed("data: " + json.dumps(chat_chunk({"content": "partial"})) + '\n\ndata: {"id'),
        None,
        {
            "content": "partial",
            "problems": [
                "1 event(s) with malformed JSON skipped",
                "stream ended without data: [DONE] (cut off?)",
            ],
        },
    ),
    (
        "chat stream with an error event",
        streamed(
            sse(
                (None, chat_chunk({"content": "a"})),
                (None, {"error": {"message": "overloaded", "type": "server"}}),
            )
        ),
        "chat.completions",
        {"content": "a", "error": "server: overloaded"},
    ),
    (
        "chat with keep-alives and CRLF",
        streamed(": ping\r\n\r\n" + sse_chat_stream("hi you").replace("\n", "\r\n")),
        None,
        {"content": "hiyou", "finish_reason": "stop", "problems": []},
    ),
    (
        "stream of garbage",
        streamed("data: nope\n\ndata: [1, 2]\n\n"),
        None,
        {
            "api": None,
            "problems": [
                "1 event(s) with malformed JSON skipped",
                "1 event(s) that are not JSON objects skipped",
                "could not tell which API this stream speaks",
            ],
        },
    ),
    (
        "responses reasoning + text + call, cut before completed",
        streamed(
            sse(
                (
                    "response.created",
                    {"type": "response.created", "response": {"model": "o-1", "status": "in_progress"}},
                ),
                (
                    None,
                    {
                        "type": "response.output_item.added",
                        "output_index": 0,
                        "item": {"type": "reasoning", "summary": []},
                    },
                ),
                (
                    None,
                    {
                        "type": "response.reasoning_summary_text.delta",
                        "output_index": 0,
                        "summary_index": 0,
                        "delta": "plan",
                    },
                ),
                (
                    None,
                    {
                        "type": "response.output_item.added",
                        "output_index": 1,
                        "item": {"type": "message", "content": []},
                    },
                ),
                (
                    None,
                    {
                        "type": "response.output_text.delta",
                        "output_index": 1,
                        "content_index": 0,
                        "delta": "Hel",
                    },
                ),
                (
                    None,
                    {
                        "type": "response.output_text.delta",
                        "output_index": 1,
                        "content_index": 0,
                        "delta": "lo",
                    },
                ),
                (
                    None,
                    {
                        "type": "response.output_item.added",
                        "output_index": 2,
                        "item": {"type": "function_call", "call_id": "call_9", "name": "ls", "arguments": ""},
                    },
                ),
                (
                    None,
                    {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"d":'},
                ),
                (
                    None,
                    {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '"."}'},
                ),
            )
        ),
        None,
        {
            "api": "responses",
            "model": "o-1",
            "reasoning": "plan",
            "content": "Hello",
            "tool_calls": [("call_9", "ls", '{"d":"."}')],
            "finish_reason": None,
            "problems": ["stream ended without response.completed (cut off?)"],
        },
    ),
    (
        "responses incomplete",
        streamed(
            sse(
                (
                    "response.incomplete",
                    {
                        "type": "response.incomplete",
                        "response": {
                            "status": "incomplete",
                            "model": "o",
                            "incomplete_details": {"reason": "max_output_tokens"},
                            "output": [
                                {"type": "message", "content": [{"type": "output_text", "text": "trunc"}]}
                            ],
                        },
                    },
                )
            )
        ),
        None,
        {"content": "trunc", "finish_reason": "length", "problems": []},
    ),
    (
        "responses failed",
        streamed(
            sse(
                (
                    None,
                    {
                        "type": "response.failed",
                        "response": {
                            "status": "failed",
                            "error": {"code": "server_error", "message": "boom"},
                            "output": [],
                        },
                    },
                )
            )
        ),
        None,
        {"finish_reason": "error", "error": "server_error: boom"},
    ),
    (
        "anthropic thinking + text + tool, usage overlaid",
        streamed(
            sse(
                (
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {"model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 1}},
                    },
                ),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "thinking", "thinking": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "thinking_delta", "thinking": "hmm"},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "signature_delta", "signature": "sig"},
                    },
                ),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 1,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "text_delta", "text": "ok"},
                    },
                ),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 2,
                        "content_block": {"type": "tool_use", "id": "tu", "name": "bash", "input": {}},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 2,
                        "delta": {"type": "input_json_delta", "partial_json": '{"cmd": '},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 2,
                        "delta": {"type": "input_json_delta", "partial_json": '"ls"}'},
                    },
                ),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "max_tokens"},
                        "usage": {"output_tokens": 9},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            )
        ),
        None,
        {
            "api": "messages",
            "model": "claude-x",
            "reasoning": "hmm",
            "content": "ok",
            "tool_calls": [("tu", "bash", '{"cmd": "ls"}')],
            "finish_reason": "length",
            "usage": {"input_tokens": 5, "output_tokens": 9},
            "problems": [],
        },
    ),
    (
        "anthropic overloaded mid-stream",
        streamed(
            sse(
                ("message_start", {"type": "message_start", "message": {"model": "c"}}),
                ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            )
        ),
        None,
        {
            "error": "overloaded_error: Overloaded",
            "problems": ["stream ended without message_stop (cut off?)"],
        },
    ),
    (
        "anthropic body with thinking",
        {
            "type": "message",
            "model": "c",
            "stop_reason": "end_turn",
            "content": [
                {"type": "thinking", "thinking": "t"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
            ],
        },
        None,
        {"reasoning": "t\n\n[redacted thinking]", "content": "ab", "finish_reason": "stop"},
    ),
    (
        "openai error body (4xx)",
        {
            "status_code": 429,
            "headers": [],
            "body": {"error": {"message": "slow down", "type": "rate_limit"}},
        },
        "chat.completions",
        {"error": "rate_limit: slow down", "content": "", "problems": []},
    ),
    (
        "parquet error object",
        {"error": {"kind": "upstream_unreachable", "message": "refused"}},
        None,
        {"error": "upstream_unreachable: refused", "problems": []},
    ),
    (
        "non-JSON 502 page",
        {"status_code": 502, "headers": [], "body_text": "<html>bad gateway</html>"},
        None,
        {"error": "<html>bad gateway</html>", "problems": []},
    ),
    (
        "undecodable body",
        {"status_code": 200, "headers": [], "body_base64": "AAE=", "decode_error": "bad gzip"},
        None,
        {"problems": ["response body is bad gzip; see the raw record"]},
    ),
    (
        "stream not UTF-8",
        {
            "status_code": 200,
            "headers": [],
            "stream": True,
            "raw_base64": base64.b64encode(sse_chat_stream("x y").encode() + b"\xff").decode(),
        },
        None,
        {"content": "xy", "problems": ["stream was not valid UTF-8; invalid bytes replaced"]},
    ),
    ("no response", None, "chat.completions", {"problems": ["no response (the upstream never answered)"]}),
    ("response is a list", [1], None, {"problems": ["response is a list, not an object"]}),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("response", "api", "expected"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_decode_edge_cases(response: Any, api: str | None, expected: dict[str, Any]) -> None:
    check(decode_response(response, api), expected)


def test_to_message_is_openai_shaped() -> None:
    decoded = decode_response(streamed(CHAT_TWO_TOOLS_INTERLEAVED))
    assert decoded.to_message() == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "think hard",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y":2}'}},
        ],
    }
    assert decode_response({"choices": [{"message": {"content": "hi"}}]}).to_message() == {
        "role": "assistant",
        "content": "hi",
    }


def test_decode_record_keeps_proxy_error_and_reads_websocket_frames() -> None:
    failed = make_record(status_code=0, error={"kind": "upstream_reset", "message": "peer closed"})
    decoded = decode_record(failed)
    assert decoded.error == "upstream_reset: peer closed"
    assert decoded.problems == []
    frames = [{"from": "client", "text": json.dumps({"type": "response.create"})}] + [
        {"from": "server", "text": data} for _, data in responses_events({"model": "m", "input": "hi"})
    ]
    websocket = make_record(api="responses") | {"transport": "websocket", "websocket": {"messages": frames}}
    decoded = decode_record(websocket)
    assert (decoded.content, decoded.finish_reason, decoded.problems) == (
        "Responses API says hi.",
        "stop",
        [],
    )


# ---------------------------------------------------------------- request_messages

REQUEST_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "chat passes through",
        {"messages": [{"role": "user", "content": "hi"}]},
        [{"role": "user", "content": "hi"}],
    ),
    ("legacy prompt", {"prompt": "once upon"}, [{"role": "user", "content": "once upon"}]),
    (
        "responses string input",
        {"instructions": "be brief", "input": "hi"},
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    ),
    (
        "responses items: one turn merges reasoning, text and calls",
        {
            "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "look first"}]},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Looking."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "cat", "arguments": '{"f":1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "a.py"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "x=1"}],
                },
                {"type": "web_search_call", "id": "ws"},
            ]
        },
        [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": "fix it"},
            {
                "role": "assistant",
                "content": "Looking.",
                "reasoning_content": "look first",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "cat", "arguments": '{"f":1}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "a.py"},
            {"role": "tool", "tool_call_id": "c2", "content": "x=1"},
            {"role": "web_search_call", "content": '{"type":"web_search_call","id":"ws"}'},
        ],
    ),
    (
        "responses image part",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what"},
                        {"type": "input_image", "image_url": "data:x"},
                    ],
                }
            ]
        },
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what"},
                    {"type": "image_url", "image_url": {"url": "data:x"}},
                ],
            }
        ],
    ),
    (
        "anthropic system blocks, tool use and results",
        {
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "text", "text": "running"},
                        {"type": "tool_use", "id": "t1", "name": "bash", "input": {"c": "ls"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": [{"type": "text", "text": "denied"}],
                        },
                        {"type": "text", "text": "try again"},
                    ],
                },
            ],
        },
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "running",
                "reasoning_content": "hm",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "bash", "arguments": '{"c":"ls"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "denied", "is_error": True},
            {"role": "user", "content": "try again"},
        ],
    ),
    ("not a request", {"foo": 1}, []),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES]
)
def test_request_messages(body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert request_messages(body) == expected


def test_request_messages_does_not_alias_the_body() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    request_messages(body)[0]["content"] = "changed"
    assert body["messages"][0]["content"] == "hi"


# ---------------------------------------------------------------- properties

field_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.none() | field_text.filter(lambda s: s.strip() == s),
            st.lists(field_text, min_size=1, max_size=3),
        )
    ),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
)
def test_parse_sse_round_trips_any_events(events: list, newline: str, comments: bool) -> None:
    body = ""
    for name, lines in events:
        if comments:
            body += f": keep-alive{newline}{newline}"
        if name is not None:
            body += f"event: {name}{newline}"
        body += "".join(f"data: {line}{newline}" for line in lines) + newline
    assert list(parse_sse(body)) == [SseEvent(name, "\n".join(lines)) for name, lines in events]


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=400), st.sampled_from([None, "chat.completions", "responses", "messages", "completions"])
)
def test_random_sse_never_raises(raw: str, api: str | None) -> None:
    decoded = decode_response(streamed(raw), api)
    assert isinstance(decoded.to_message()["content"], str)


sse_fragments = st.sampled_from(
    [
        "data: ",
        "event: ",
        "\n",
        "\n\n",
        "\r\n",
        ": c\n",
        "[DONE]",
        "{",
        "}",
        '"type":',
        '"choices":[',
        '{"index":0,"delta":{"content":"x","tool_calls":[{"index":',
        "1",
        "null",
        '"response.output_text.delta"',
        '"content_block_delta"',
        '"delta":{"type":"input_json_delta","partial_json":"',
        '"output_index":',
        '"message_start"',
        '{"type":"message_start","message":{"usage":',
        "]",
        ",",
        '"x"',
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(sse_fragments, max_size=60), st.sampled_from([None, "chat.completions", "responses", "messages"])
)
def test_sse_shaped_noise_never_raises(fragments: list[str], api: str | None) -> None:
    decoded = decode_response(streamed("".join(fragments)), api)
    assert all(isinstance(call.arguments, str) for call in decoded.tool_calls)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.lists(st.integers(min_value=1, max_value=50), max_size=30))
def test_chat_stream_reassembles_any_split(text: str, cuts: list[int]) -> None:
    pieces, rest = [], text
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    raw = sse(
        *[(None, chat_chunk({"content": p})) for p in pieces],
        (None, chat_chunk({}, "stop")),
        (None, "[DONE]"),
    )
    decoded = decode_response(streamed(raw))
    assert (decoded.content, decoded.finish_reason, decoded.problems) == (text, "stop", [])
