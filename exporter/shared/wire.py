"""LLM API wire formats: SSE parsing, response decoding and request messages. No I/O.

Four APIs are understood, each by one decoder that turns a body (or the events of a
stream) into the same `DecodedResponse`:

- `chat.completions` (and the legacy `completions`): OpenAI and every compatible server;
- `responses`: the OpenAI Responses API (also its WebSocket transport, same events);
- `messages`: Anthropic Messages;
- `gemini.generate_content`: Google's `generateContent` / `streamGenerateContent` (SSE with
  `?alt=sse`, else a JSON array of the same chunks).

Decoding never raises on bad input: a cut or malformed stream yields what could be
decoded, and `problems` says what was wrong, so a reviewer sees the data and the damage.
Finish reasons are normalised to the chat-completions vocabulary (`stop`, `length`,
`tool_calls`, `content_filter`, `error`); values without an equivalent pass through.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from exporter.core.record import CaptureRecord, model_in_url
from exporter.core.values import arguments_json, as_dict, as_str, as_text, clip_words, join_text, to_json

CHAT = "chat.completions"
COMPLETIONS = "completions"
RESPONSES = "responses"
MESSAGES = "messages"
GEMINI = "gemini.generate_content"

ANTHROPIC_EVENT_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "ping",
    }
)
STREAM_TERMINATORS = {
    CHAT: "data: [DONE]",
    COMPLETIONS: "data: [DONE]",
    RESPONSES: "response.completed",
    MESSAGES: "message_stop",
    GEMINI: "a chunk with finishReason",
}


# ---------------------------------------------------------------- SSE

# Only these end an SSE line; str.splitlines() would also split on U+2028 and form feeds,
# which JSON allows unescaped inside strings.
SSE_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: its `event:` name (None when absent) and its joined `data:` lines."""

    event: str | None
    data: str


def parse_sse(text: str) -> Iterator[SseEvent]:
    """Events of an SSE body, per the WHATWG rules, tolerant of what proxies actually see.

    `\\r\\n`, `\\r` and `\\n` all end lines; comments (`:` lines, keep-alives) and unknown
    fields are skipped; several `data:` lines join with `\\n`. An event cut off before its
    blank line (a stream that died mid-way) is still yielded: it is the last thing the
    client received, and hiding it would hide the cut.
    """
    name: str | None = None
    data: list[str] = []
    for line in SSE_LINE_END.split(text):
        if not line:
            if data:
                yield SseEvent(name, "\n".join(data))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field_name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field_name == "data":
            data.append(value)
        elif field_name == "event":
            name = value
    if data:
        yield SseEvent(name, "\n".join(data))


# ---------------------------------------------------------------- decoded response


@dataclass(slots=True)
class ToolCall:
    """A tool call the model made: `arguments` is the JSON string exactly as the model wrote it."""

    id: str = ""
    name: str = ""
    arguments: str = ""

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(slots=True)
class DecodedResponse:
    """What the model answered, whatever the API and whether it streamed."""

    api: str | None = None
    stream: bool = False
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    response_id: str | None = (
        None  # the provider's id of this answer (Responses: `previous_response_id` links)
    )

    def to_message(self) -> dict[str, Any]:
        """The OpenAI-style assistant message; `reasoning_content`/`tool_calls` only when present."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


def decode_response(response: dict[str, Any] | None, api: str | None = None) -> DecodedResponse:
    """Decode a capture record's `response` object, or a parquet `response` column parsed.

    Accepted shapes: the record's message object (`{"status_code", "headers", "body"...}` or
    `{"stream": true, "raw": ...}`), the bare body JSON (parquet), or an error object.
    `api` is the record's `api` field; None (or `custom`) detects it from the data.
    """
    api = api if api in DECODERS else None
    if response is None:
        return DecodedResponse(api=api, problems=["no response (the upstream never answered)"])
    if not isinstance(response, dict):
        return DecodedResponse(api=api, problems=[f"response is a {type(response).__name__}, not an object"])
    if response.get("stream") and ("raw" in response or "raw_base64" in response):
        text, problem = _stream_text(response)
        decoded = decode_stream(parse_sse(text), api)
        if problem:
            decoded.problems.insert(0, problem)
        return decoded
    if _is_message_object(response):
        if "body" in response:
            return decode_body(response["body"], api)
        decoded = DecodedResponse(api=api)
        detail = response.get("decode_error") or "not JSON"
        body_text = as_str(response.get("body_text"))
        if body_text is not None and (response.get("status_code") or 0) >= 400:
            decoded.error = clip_words(body_text, 2000)
        elif "body_text" in response or "body_base64" in response:
            decoded.problems.append(f"response body is {detail}; see the raw record")
        else:
            decoded.problems.append("empty response body")
        return decoded
    return decode_body(response, api)


def decode_stream(events: Iterable[SseEvent], api: str | None = None) -> DecodedResponse:
    """Decode the events of a streamed response (SSE, or WebSocket frames wrapped as events)."""
    stream = _JsonEvents(events)
    api = api if api in DECODERS else stream.detect_api()
    decoded = DecodedResponse(api=api, stream=True)
    if api is None:
        decoded.problems.append("could not tell which API this stream speaks")
    else:
        DECODERS[api].stream(stream, decoded)
        if not stream.terminated(api):
            decoded.problems.append(f"stream ended without {STREAM_TERMINATORS[api]} (cut off?)")
    decoded.problems[:0] = stream.problems()
    return decoded


def decode_body(body: Any, api: str | None = None) -> DecodedResponse:
    """Decode a non-streamed response body (already parsed JSON)."""
    if isinstance(body, list) and body and all(isinstance(c, dict) and _is_gemini(c) for c in body):
        # streamGenerateContent without `alt=sse` answers a JSON array of the stream's chunks.
        decoded = decode_stream((SseEvent(None, json.dumps(chunk)) for chunk in body), GEMINI)
        decoded.stream = False
        return decoded
    if not isinstance(body, dict):
        return DecodedResponse(api=api, problems=[f"response body is a {type(body).__name__}, not an object"])
    api = api if api in DECODERS else _detect_body_api(body)
    decoded = DecodedResponse(
        api=api,
        model=as_str(body.get("model")),
        usage=as_dict(body.get("usage")) or None,
        response_id=as_str(body.get("id")),
    )
    error = _error_text(body)
    if error is not None:
        decoded.error = error
        if decoded.usage is None:
            return decoded
    if api is None:
        if error is None:
            decoded.problems.append("could not tell which API this body belongs to")
        return decoded
    DECODERS[api].body(body, decoded)
    return decoded


def decode_capture(record: CaptureRecord) -> DecodedResponse:
    """Decode a typed capture record (`exporter.core.record`): see `decode_record`."""
    return decode_record(_capture_dict(record))


def capture_exchanges(record: CaptureRecord) -> list[Exchange]:
    """The exchanges of a typed capture record: see `record_exchanges`."""
    return record_exchanges(_capture_dict(record) | {"request": {"body": record.request_body()}})


def _capture_dict(record: CaptureRecord) -> dict[str, Any]:
    """The fields decoding reads, in the record's JSON shape."""
    return {
        "api": record.api,
        "response": record.response.as_dict() if record.response else None,
        "websocket": msgspec.to_builtins(record.websocket) if record.websocket else None,
        "error": msgspec.to_builtins(record.error) if record.error else None,
    }


def decode_record(record: dict[str, Any]) -> DecodedResponse:
    """Decode a whole capture record: HTTP or WebSocket transport, with the proxy's error kept."""
    api = record.get("api")
    websocket = record.get("websocket")
    if isinstance(websocket, dict):
        frames = [
            m for m in websocket.get("messages") or [] if isinstance(m, dict) and m.get("from") == "server"
        ]
        decoded = decode_stream(
            (SseEvent(None, m["text"]) for m in frames if isinstance(m.get("text"), str)), api
        )
    else:
        decoded = decode_response(record.get("response"), api)
    _keep_proxy_error(decoded, record.get("error"))
    return decoded


def _keep_proxy_error(decoded: DecodedResponse, error: Any) -> None:
    if isinstance(error, dict) and error:
        proxy_error = f"{error.get('kind', 'error')}: {error.get('message', '')}".rstrip(": ")
        if decoded.error not in (None, proxy_error):  # a parquet response may carry the same error
            proxy_error = f"{proxy_error}; {decoded.error}"
        decoded.error = proxy_error
        decoded.problems = [p for p in decoded.problems if not p.startswith("no response")]


@dataclass(slots=True)
class Exchange:
    """One request and its answer: an HTTP call, or one turn of a WebSocket connection."""

    body: dict[str, Any]
    decoded: DecodedResponse
    turn: int = 0  # 0 for HTTP; the turn's 1-based position in its WebSocket connection
    sent_at: float | None = None  # WebSocket: epoch seconds of the turn's client frame


def record_exchanges(record: dict[str, Any]) -> list[Exchange]:
    """The exchanges of a capture record: one for HTTP, one per `response.create` on a WebSocket.

    On a WebSocket each client `response.create` starts a turn and the server frames up to the
    next one are its answer. A connection-level proxy error lands on the last turn.
    """
    websocket = record.get("websocket")
    if not isinstance(websocket, dict):
        return [Exchange(as_dict(as_dict(record.get("request")).get("body")), decode_record(record))]
    api = record.get("api")
    turns: list[tuple[dict[str, Any], float | None, list[SseEvent]]] = []
    for frame in websocket.get("messages") or []:
        if not isinstance(frame, dict) or not isinstance(frame.get("text"), str):
            continue
        if frame.get("from") == "client":
            try:
                sent = json.loads(frame["text"])
            except ValueError:
                continue
            if isinstance(sent, dict) and sent.get("type") == "response.create":
                # Codex sends the body's fields beside `type`; some clients nest them under `response`.
                body = sent["response"] if isinstance(sent.get("response"), dict) else sent
                stamp = frame.get("timestamp")
                turns.append(
                    (
                        {k: v for k, v in body.items() if k != "type"},
                        float(stamp) if isinstance(stamp, int | float) else None,
                        [],
                    )
                )
        elif turns:
            turns[-1][2].append(SseEvent(None, frame["text"]))
    if not turns:
        return [Exchange({}, decode_record(record))]
    exchanges = [
        Exchange(body, decode_stream(events, api), turn=number, sent_at=sent_at)
        for number, (body, sent_at, events) in enumerate(turns, start=1)
    ]
    _keep_proxy_error(exchanges[-1].decoded, record.get("error"))
    return exchanges


def request_model(url: str | None, body: dict[str, Any]) -> str | None:
    """The model a call asked for: the body's `model`, else the one its URL names (Gemini)."""
    return as_str(body.get("model")) or model_in_url(url)


# ---------------------------------------------------------------- plumbing shared by decoders


def _is_message_object(response: dict[str, Any]) -> bool:
    """The record's message object, as opposed to a bare body that happens to have a `body` key."""
    return "status_code" in response and "headers" in response


def _stream_text(response: dict[str, Any]) -> tuple[str, str | None]:
    if isinstance(response.get("raw"), str):
        return response["raw"], None
    try:
        raw = base64.b64decode(response.get("raw_base64") or "", validate=True)
    except (binascii.Error, ValueError):
        return "", "raw_base64 is not valid base64"
    return raw.decode("utf-8", errors="replace"), "stream was not valid UTF-8; invalid bytes replaced"


class _JsonEvents:
    """The JSON payloads of a stream, counting what could not be parsed instead of failing."""

    def __init__(self, events: Iterable[SseEvent]) -> None:
        self.payloads: list[tuple[str | None, dict[str, Any]]] = []
        self.saw_done = False
        self.malformed = 0
        self.non_objects = 0
        for event in events:
            data = event.data.strip()
            if data == "[DONE]":
                self.saw_done = True
                continue
            if not data:
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                self.malformed += 1
                continue
            if isinstance(payload, dict):
                self.payloads.append((event.event, payload))
            else:
                self.non_objects += 1

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, payload): the type from the payload, else from the `event:` line."""
        for name, payload in self.payloads:
            kind = payload.get("type")
            yield (kind if isinstance(kind, str) else name or ""), payload

    def detect_api(self) -> str | None:
        for kind, payload in self:
            if kind.startswith("response.") or isinstance(payload.get("response"), dict):
                return RESPONSES
            if kind in ANTHROPIC_EVENT_TYPES:
                return MESSAGES
            if isinstance(payload.get("choices"), list):
                return _chat_or_completions(payload)
            if _is_gemini(payload):
                return GEMINI
        return None

    def terminated(self, api: str) -> bool:
        if api in (CHAT, COMPLETIONS):
            return self.saw_done
        if api == GEMINI:  # no terminator event: the last chunk carries the finish reason
            return any(
                isinstance(c, dict) and c.get("finishReason")
                for _, payload in self
                for c in payload.get("candidates") or []
            )
        ends = (
            {"response.completed", "response.incomplete", "response.failed"}
            if api == RESPONSES
            else {"message_stop"}
        )
        return any(kind in ends for kind, _ in self)

    def problems(self) -> list[str]:
        found = []
        if self.malformed:
            found.append(f"{self.malformed} event(s) with malformed JSON skipped")
        if self.non_objects:
            found.append(f"{self.non_objects} event(s) that are not JSON objects skipped")
        return found


def _chat_or_completions(payload: dict[str, Any]) -> str:
    choices = payload.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    return COMPLETIONS if "text" in first and "message" not in first and "delta" not in first else CHAT


def _is_gemini(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("candidates"), list) or isinstance(payload.get("usageMetadata"), dict)


def _detect_body_api(body: dict[str, Any]) -> str | None:
    if body.get("object") == "response" or isinstance(body.get("output"), list):
        return RESPONSES
    if _is_gemini(body) or isinstance(body.get("promptFeedback"), dict):
        return GEMINI
    if body.get("type") == "message" or (isinstance(body.get("content"), list) and "stop_reason" in body):
        return MESSAGES
    if isinstance(body.get("choices"), list):
        return _chat_or_completions(body)
    return None


def _error_text(body: dict[str, Any]) -> str | None:
    """The provider's error message, for the shapes OpenAI, Anthropic and proxies use."""
    error = body.get("error")
    if error is None and body.get("type") == "error":
        error = body
    if error is None or error == {}:
        return None
    if isinstance(error, dict):
        nested = error.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else error
        message = inner.get("message") or inner.get("msg")
        kind = inner.get("type") or inner.get("kind") or inner.get("code")
        if message is None:
            return json.dumps(inner, ensure_ascii=False)
        return f"{kind}: {message}" if kind else str(message)
    return str(error)


# ---------------------------------------------------------------- chat completions


CHAT_REASONING_KEYS = ("reasoning_content", "reasoning")  # DeepSeek/vLLM, OpenRouter/Ollama


def _chat_body(body: dict[str, Any], decoded: DecodedResponse) -> None:
    choices = [c for c in body.get("choices") or [] if isinstance(c, dict)]
    if not choices:
        decoded.problems.append("response has no choices")
        return
    if len(choices) > 1:
        decoded.problems.append(f"{len(choices)} choices; showing the first")
    choice = choices[0]
    decoded.finish_reason = as_str(choice.get("finish_reason"))
    if decoded.api == COMPLETIONS:
        decoded.content = as_text(choice.get("text"))
        return
    message = as_dict(choice.get("message"))
    decoded.content = as_text(message.get("content")) or as_text(message.get("refusal"))
    decoded.reasoning = next(
        (as_text(message.get(k)) for k in CHAT_REASONING_KEYS if as_text(message.get(k))), ""
    )
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            function = as_dict(call.get("function"))
            decoded.tool_calls.append(
                ToolCall(
                    as_text(call.get("id")),
                    as_text(function.get("name")),
                    arguments_json(function.get("arguments")),
                )
            )


def _chat_stream(stream: _JsonEvents, decoded: DecodedResponse) -> None:
    content: list[str] = []
    reasoning: list[str] = []
    slots: dict[int, ToolCall] = {}
    other_choices = False
    for _, chunk in stream:
        decoded.model = decoded.model or as_str(chunk.get("model"))
        decoded.response_id = decoded.response_id or as_str(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            decoded.usage = chunk["usage"]
        error = _error_text(chunk)
        if error is not None:
            decoded.error = error
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if choice.get("index", 0) != 0:
                other_choices = True
                continue
            decoded.finish_reason = as_str(choice.get("finish_reason")) or decoded.finish_reason
            if decoded.api == COMPLETIONS:
                content.append(as_text(choice.get("text")))
                continue
            delta = as_dict(choice.get("delta"))
            content.append(as_text(delta.get("content")) or as_text(delta.get("refusal")))
            reasoning.append(
                next((as_text(delta.get(k)) for k in CHAT_REASONING_KEYS if as_text(delta.get(k))), "")
            )
            for fragment in delta.get("tool_calls") or []:
                if isinstance(fragment, dict):
                    _merge_tool_fragment(slots, fragment)
    if other_choices:
        decoded.problems.append("several choices streamed; showing the first")
    decoded.content = "".join(content)
    decoded.reasoning = "".join(reasoning)
    decoded.tool_calls = [slots[index] for index in sorted(slots)]


def _merge_tool_fragment(slots: dict[int, ToolCall], fragment: dict[str, Any]) -> None:
    """Fold one `delta.tool_calls[]` fragment into its slot: ids and names overwrite, arguments append.

    Some OpenAI-compatible servers omit `index`; then a fragment with a new id opens a new
    slot and one without an id continues the last slot.
    """
    index = fragment.get("index")
    call_id = as_text(fragment.get("id"))
    if not isinstance(index, int):
        known = next((i for i, slot in slots.items() if call_id and slot.id == call_id), None)
        if known is not None:
            index = known
        elif call_id or not slots:
            index = max(slots, default=-1) + 1
        else:
            index = max(slots)
    slot = slots.setdefault(index, ToolCall())
    function = as_dict(fragment.get("function"))
    slot.id = call_id or slot.id
    slot.name = as_text(function.get("name")) or slot.name
    arguments = function.get("arguments")
    slot.arguments += (
        arguments if isinstance(arguments, str) else ("" if arguments is None else arguments_json(arguments))
    )


# ---------------------------------------------------------------- Responses API


RESPONSES_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _responses_body(body: dict[str, Any], decoded: DecodedResponse) -> None:
    _responses_output(body.get("output") or [], decoded)
    _responses_status(body, decoded)


def _responses_output(items: Iterable[Any], decoded: DecodedResponse) -> None:
    content: list[str] = []
    reasoning: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    content.append(as_text(part.get("text")) or as_text(part.get("refusal")))
        elif kind == "reasoning":
            parts = [
                as_text(p.get("text"))
                for p in (item.get("content") or item.get("summary") or [])
                if isinstance(p, dict)
            ]
            reasoning.append("\n\n".join(p for p in parts if p))
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            call_id = as_text(item.get("call_id")) or as_text(item.get("id"))
            decoded.tool_calls.append(ToolCall(call_id, as_text(item.get("name")), arguments_json(arguments)))
    decoded.content = "".join(content)
    decoded.reasoning = "\n\n".join(r for r in reasoning if r)


def _responses_status(response: dict[str, Any], decoded: DecodedResponse) -> None:
    status = response.get("status")
    if status == "completed":
        decoded.finish_reason = "tool_calls" if decoded.tool_calls else "stop"
    elif status == "incomplete":
        details = as_dict(response.get("incomplete_details"))
        reason = as_text(details.get("reason")) or "incomplete"
        decoded.finish_reason = RESPONSES_FINISH.get(reason, reason)
    elif status == "failed":
        decoded.finish_reason = "error"
    elif isinstance(status, str):
        decoded.finish_reason = status


class _ResponsesItems:
    """Output items rebuilt from stream deltas, keyed by `output_index`, in the final item shape."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def item(self, event: dict[str, Any]) -> dict[str, Any]:
        index = event.get("output_index")
        if not isinstance(index, int):
            index = max(self.items, default=0)
        return self.items.setdefault(index, {"type": "message", "content": []})

    def replace(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("item"), dict):
            self.item(event).clear()
            self.item(event).update(event["item"])

    def append_text(self, event: dict[str, Any], key: str, part_type: str) -> None:
        item = self.item(event)
        parts = item.setdefault(key, [])
        index = event.get("summary_index", event.get("content_index", 0))
        index = index if isinstance(index, int) else 0
        while len(parts) <= index:
            parts.append({"type": part_type, "text": ""})
        parts[index]["text"] = as_text(parts[index].get("text")) + as_text(event.get("delta"))

    def ordered(self) -> list[dict[str, Any]]:
        return [self.items[index] for index in sorted(self.items)]


def _responses_stream(stream: _JsonEvents, decoded: DecodedResponse) -> None:
    items = _ResponsesItems()
    final: dict[str, Any] | None = None
    for kind, event in stream:
        response = event.get("response") if isinstance(event.get("response"), dict) else None
        if response is not None:
            decoded.model = decoded.model or as_str(response.get("model"))
            decoded.response_id = decoded.response_id or as_str(response.get("id"))
            decoded.usage = as_dict(response.get("usage")) or decoded.usage
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                final = response
                decoded.error = _error_text(response) or decoded.error
        if kind in ("response.output_item.added", "response.output_item.done"):
            items.replace(event)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            items.append_text(event, "content", "output_text")
        elif kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            items.append_text(
                event, "content" if kind == "response.reasoning_text.delta" else "summary", "text"
            )
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            item = items.item(event)
            key = "arguments" if kind == "response.function_call_arguments.delta" else "input"
            item[key] = as_text(item.get(key)) + as_text(event.get("delta"))
        elif kind == "response.function_call_arguments.done" and isinstance(event.get("arguments"), str):
            items.item(event)["arguments"] = event["arguments"]
        elif kind == "error":
            decoded.error = _error_text({"error": event.get("error", event)})
    # The final response carries the authoritative output; the deltas matter only for a cut stream.
    output = final.get("output") if final is not None else None
    _responses_output(output if isinstance(output, list) and output else items.ordered(), decoded)
    if final is not None:
        _responses_status(final, decoded)


# ---------------------------------------------------------------- Anthropic Messages


ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _messages_body(body: dict[str, Any], decoded: DecodedResponse) -> None:
    _messages_blocks(body.get("content") or [], decoded)
    reason = as_str(body.get("stop_reason"))
    decoded.finish_reason = ANTHROPIC_FINISH.get(reason, reason) if reason else None


def _messages_blocks(blocks: Iterable[Any], decoded: DecodedResponse) -> None:
    content: list[str] = []
    reasoning: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            content.append(as_text(block.get("text")))
        elif kind == "thinking":
            reasoning.append(as_text(block.get("thinking")))
        elif kind == "redacted_thinking":
            reasoning.append("[redacted thinking]")
        elif kind in ("tool_use", "server_tool_use"):
            arguments = block["partial_json"] if "partial_json" in block else block.get("input")
            decoded.tool_calls.append(
                ToolCall(
                    as_text(block.get("id")), as_text(block.get("name")), arguments_json(arguments or {})
                )
            )
    decoded.content = "".join(content)
    decoded.reasoning = "\n\n".join(r for r in reasoning if r)


def _messages_stream(stream: _JsonEvents, decoded: DecodedResponse) -> None:
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    for kind, event in stream:
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = event["message"]
            decoded.model = as_str(message.get("model"))
            decoded.response_id = as_str(message.get("id"))
            usage.update(as_dict(message.get("usage")))
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[_block_index(event, blocks)] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            block = blocks.setdefault(_block_index(event, blocks), {"type": "text"})
            _apply_block_delta(block, event["delta"])
        elif kind == "message_delta":
            delta = as_dict(event.get("delta"))
            reason = as_str(delta.get("stop_reason"))
            decoded.finish_reason = ANTHROPIC_FINISH.get(reason, reason) if reason else decoded.finish_reason
            usage.update(as_dict(event.get("usage")))
        elif kind == "error":
            decoded.error = _error_text(event)
    decoded.usage = usage or None
    _messages_blocks((blocks[index] for index in sorted(blocks)), decoded)


def _block_index(event: dict[str, Any], blocks: dict[int, dict[str, Any]]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else max(blocks, default=0)


def _apply_block_delta(block: dict[str, Any], delta: dict[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = as_text(block.get("text")) + as_text(delta.get("text"))
    elif kind == "thinking_delta":
        block["thinking"] = as_text(block.get("thinking")) + as_text(delta.get("thinking"))
    elif kind == "input_json_delta":
        block["partial_json"] = as_text(block.get("partial_json")) + as_text(delta.get("partial_json"))


# ---------------------------------------------------------------- Gemini generateContent


GEMINI_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}


def gemini_call_id(call: dict[str, Any], index: int) -> str:
    """A function call's id: its own when the API gave one, else `<name>#<index in its turn>`.

    The Gemini API usually sends none and pairs results with calls by name and order; the
    made-up id is the same for the answer and for the copy the client sends back, so the
    `tool_call_id` of a result still names its call.
    """
    return as_text(call.get("id")) or f"{as_text(call.get('name'))}#{index}"


def _gemini_parts(parts: Iterable[Any], decoded: DecodedResponse) -> None:
    """A model turn's parts: text, thoughts (`thought: true`) and function calls."""
    content: list[str] = []
    reasoning: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            call_id = gemini_call_id(call, len(decoded.tool_calls))
            decoded.tool_calls.append(
                ToolCall(call_id, as_text(call.get("name")), arguments_json(call.get("args")))
            )
        elif part.get("thought") is True:
            reasoning.append(as_text(part.get("text")))
        elif isinstance(part.get("text"), str):
            content.append(part["text"])
        elif part:
            content.append(_gemini_placeholder(part))
    decoded.content = "".join(content)
    decoded.reasoning = "".join(reasoning)


def _gemini_placeholder(part: dict[str, Any]) -> str:
    """A non-text part as a short marker: the bytes of an image are no reading matter."""
    for key in ("inlineData", "fileData"):
        if isinstance(part.get(key), dict):
            data = part[key]
            return f"[{as_text(data.get('mimeType')) or 'file'}{' ' + as_text(data.get('fileUri')) if data.get('fileUri') else ''}]"
    return json.dumps(part, ensure_ascii=False)


def _gemini_finish(candidate: dict[str, Any], decoded: DecodedResponse) -> None:
    reason = as_str(candidate.get("finishReason"))
    if reason == "STOP" and decoded.tool_calls:
        decoded.finish_reason = "tool_calls"
    elif reason:
        decoded.finish_reason = GEMINI_FINISH.get(reason, reason.lower())


def _gemini_meta(chunk: dict[str, Any], decoded: DecodedResponse) -> None:
    decoded.model = decoded.model or as_str(chunk.get("modelVersion"))
    decoded.response_id = decoded.response_id or as_str(chunk.get("responseId"))
    decoded.usage = as_dict(chunk.get("usageMetadata")) or decoded.usage
    feedback = as_dict(chunk.get("promptFeedback"))
    if feedback.get("blockReason"):
        decoded.error = f"prompt blocked: {feedback['blockReason']}"


def _gemini_body(body: dict[str, Any], decoded: DecodedResponse) -> None:
    _gemini_meta(body, decoded)
    candidates = [c for c in body.get("candidates") or [] if isinstance(c, dict)]
    if not candidates:
        if decoded.error is None:
            decoded.problems.append("response has no candidates")
        return
    if len(candidates) > 1:
        decoded.problems.append(f"{len(candidates)} candidates; showing the first")
    _gemini_parts(as_dict(candidates[0].get("content")).get("parts") or [], decoded)
    _gemini_finish(candidates[0], decoded)


def _gemini_stream(stream: _JsonEvents, decoded: DecodedResponse) -> None:
    """Each chunk carries the next parts of the first candidate; text parts concatenate."""
    parts: list[Any] = []
    last: dict[str, Any] = {}
    for _, chunk in stream:
        _gemini_meta(chunk, decoded)
        error = _error_text(chunk)
        if error is not None:
            decoded.error = error
        candidates = [c for c in chunk.get("candidates") or [] if isinstance(c, dict)]
        if candidates:
            parts += as_dict(candidates[0].get("content")).get("parts") or []
            last = candidates[0] if candidates[0].get("finishReason") else last
    _gemini_parts(parts, decoded)
    _gemini_finish(last, decoded)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class _Decoder:
    body: Callable[[dict[str, Any], DecodedResponse], None]
    stream: Callable[[_JsonEvents, DecodedResponse], None]


DECODERS: dict[str, _Decoder] = {
    CHAT: _Decoder(_chat_body, _chat_stream),
    COMPLETIONS: _Decoder(_chat_body, _chat_stream),
    RESPONSES: _Decoder(_responses_body, _responses_stream),
    MESSAGES: _Decoder(_messages_body, _messages_stream),
    GEMINI: _Decoder(_gemini_body, _gemini_stream),
}


# ---------------------------------------------------------------- request messages


def request_messages(body: dict[str, Any], api: str | None = None) -> list[dict[str, Any]]:
    """The conversation a request sent, as OpenAI-style chat messages.

    Chat-completions messages come back as sent. A Responses request becomes `instructions`
    (system) + its input items; an Anthropic request becomes `system` + its messages, tool
    results as `tool` messages and thinking as `reasoning_content`. Items no chat message can
    express are kept as a message whose role is the item type and whose content is the item's
    JSON, so nothing is silently dropped.
    """
    if not isinstance(body, dict):
        return []
    api = api if api in DECODERS else detect_request_api(body)
    if api == RESPONSES:
        return _responses_request(body)
    if api == MESSAGES:
        return _messages_request(body)
    if api == GEMINI:
        return _gemini_request(body)
    if api == COMPLETIONS:
        prompt = body.get("prompt")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        return [{"role": "user", "content": p if isinstance(p, str) else to_json(p)} for p in prompts if p]
    return [dict(m) for m in body.get("messages") or [] if isinstance(m, dict)]


def detect_request_api(body: dict[str, Any]) -> str | None:
    if "input" in body or "instructions" in body:
        return RESPONSES
    if "contents" in body:
        return GEMINI
    messages = body.get("messages")
    if isinstance(messages, list):
        anthropic_blocks = {"tool_use", "tool_result", "thinking", "redacted_thinking"}
        if "system" in body or any(
            isinstance(block, dict) and block.get("type") in anthropic_blocks
            for message in messages
            if isinstance(message, dict) and isinstance(message.get("content"), list)
            for block in message["content"]
        ):
            return MESSAGES
        return CHAT
    if "prompt" in body:
        return COMPLETIONS
    return None


def _open_assistant(messages: list[dict[str, Any]], *, for_content: bool) -> dict[str, Any]:
    """The assistant message an item belongs to: items of one model turn share one message.

    A Responses turn arrives as reasoning, then message, then function calls; they merge
    until something else (a tool result, a user message) intervenes. Text after text or after
    tool calls starts a new message, because that was a new turn.
    """
    last = messages[-1] if messages else None
    if (
        last is not None
        and last.get("role") == "assistant"
        and (not for_content or (not last.get("content") and not last.get("tool_calls")))
    ):
        return last
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    messages.append(message)
    return message


def _parts_content(parts: Any) -> Any:
    """Message content from content parts: one string for text only, chat-style parts otherwise."""
    if isinstance(parts, str) or parts is None:
        return parts or ""
    if not isinstance(parts, list):
        return to_json(parts)
    converted: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str) and part.get("type") in (None, "text", "input_text", "output_text"):
            converted.append({"type": "text", "text": text})
        elif part.get("type") == "input_image":
            converted.append(
                {"type": "image_url", "image_url": {"url": part.get("image_url") or part.get("file_id")}}
            )
        elif part.get("type") == "image" and isinstance(part.get("source"), dict):
            source = part["source"]
            url = source.get("url") or f"data:{source.get('media_type')};base64,{source.get('data', '')}"
            converted.append({"type": "image_url", "image_url": {"url": url}})
        else:
            converted.append(part)
    if all(p.get("type") == "text" for p in converted):
        return join_text([p["text"] for p in converted])
    return converted


def _responses_request(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message" and item.get("role") == "assistant":
            _open_assistant(messages, for_content=True)["content"] = _parts_content(item.get("content"))
        elif kind == "message":
            messages.append(
                {"role": item.get("role") or "user", "content": _parts_content(item.get("content"))}
            )
        elif kind == "reasoning":
            parts = item.get("content") or item.get("summary") or []
            text = "\n\n".join(as_text(p.get("text")) for p in parts if isinstance(p, dict) and p.get("text"))
            assistant = _open_assistant(messages, for_content=True)
            assistant["reasoning_content"] = "\n\n".join(
                t for t in (assistant.get("reasoning_content"), text) if t
            )
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            call = ToolCall(
                as_text(item.get("call_id")) or as_text(item.get("id")),
                as_text(item.get("name")),
                arguments_json(arguments),
            )
            _open_assistant(messages, for_content=False).setdefault("tool_calls", []).append(call.to_openai())
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": as_text(item.get("call_id")),
                    "content": _parts_content(output),
                }
            )
        else:
            messages.append({"role": kind or "unknown", "content": to_json(item)})
    return messages


def _messages_request(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _parts_content(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role") or "user"
        content = message.get("content")
        if not isinstance(content, list):
            messages.append({"role": role, "content": _parts_content(content)})
        elif role == "assistant":
            messages.append(_anthropic_assistant(content))
        else:
            messages.extend(_anthropic_user(role, content))
    return messages


def _anthropic_assistant(blocks: list[Any]) -> dict[str, Any]:
    decoded = DecodedResponse()
    _messages_blocks(blocks, decoded)
    return decoded.to_message()


def _anthropic_user(role: str, blocks: list[Any]) -> list[dict[str, Any]]:
    """A user turn's blocks in order: tool results become `tool` messages between the text runs."""
    out: list[dict[str, Any]] = []
    pending: list[Any] = []

    def flush() -> None:
        if pending:
            out.append({"role": role, "content": _parts_content(list(pending))})
            pending.clear()

    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            flush()
            tool: dict[str, Any] = {
                "role": "tool",
                "tool_call_id": as_text(block.get("tool_use_id")),
                "content": _parts_content(block.get("content")),
            }
            if block.get("is_error"):
                tool["is_error"] = True
            out.append(tool)
        else:
            pending.append(block)
    flush()
    return out


def _gemini_request(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`systemInstruction` + `contents`: model turns become assistant messages, function responses
    `tool` messages (paired with their call by id, else by name in call order), other user parts
    user messages."""
    messages: list[dict[str, Any]] = []
    system = as_dict(body.get("systemInstruction") or body.get("system_instruction"))
    text = "".join(as_text(p.get("text")) for p in system.get("parts") or [] if isinstance(p, dict))
    if text:
        messages.append({"role": "system", "content": text})
    contents = body.get("contents")
    if isinstance(contents, dict):  # one Content instead of a list is accepted by the API
        contents = [contents]
    pending: list[tuple[str, str]] = []  # (id, name) of the last model turn's unanswered calls
    for content in contents or []:
        if not isinstance(content, dict):
            continue
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        if content.get("role") == "model":
            decoded = DecodedResponse()
            _gemini_parts(parts, decoded)
            messages.append(decoded.to_message())
            pending = [(call.id, call.name) for call in decoded.tool_calls]
            continue
        other: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part.get("functionResponse"), dict):
                answer = part["functionResponse"]
                name = as_text(answer.get("name"))
                call_id = as_text(answer.get("id")) or next((i for i, n in pending if n == name), f"{name}#0")
                pending = [(i, n) for i, n in pending if i != call_id]
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "content": json.dumps(answer.get("response"), ensure_ascii=False),
                    }
                )
            else:
                other.append(part)
        if other:
            messages.append({"role": "user", "content": _gemini_user_content(other)})
    return messages


def _gemini_user_content(parts: list[dict[str, Any]]) -> Any:
    converted: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part.get("text"), str):
            converted.append({"type": "text", "text": part["text"]})
        elif isinstance(part.get("inlineData"), dict):
            data = part["inlineData"]
            url = f"data:{as_text(data.get('mimeType'))};base64,{as_text(data.get('data'))}"
            converted.append({"type": "image_url", "image_url": {"url": url}})
        else:
            converted.append(part)
    return _parts_content(converted)
