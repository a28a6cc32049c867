"""Conversations rebuilt from capture records: every exchange decoded (`exporter.shared.wire`), grouped
into chains (`exporter.core.chains`), each chain laid out as one list of messages.

One implementation for every consumer: `agentcap rollouts --format captures` (one row per chain),
the sessions dataset (one STS file per chain) and `inspect`'s delta labels.

Memory: an agent resends its whole history on every call, so a long run holds the same messages
thousands of times. Each distinct message is kept once (`MessageStore`); a call keeps only keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from exporter.core.chains import ChainCall, build_chains, merge_transcript, message_key, preamble
from exporter.core.record import CaptureRecord
from exporter.core.values import as_dict, as_int, as_list, as_str, content_text, join_text
from exporter.rollouts.rollout import Usage, make_message, make_tool_call, to_utc
from exporter.shared.wire import (
    COMPLETIONS,
    DecodedResponse,
    Exchange,
    capture_exchanges,
    request_messages,
    request_model,
)

UNTAGGED_TASK = "-"


class MessageStore:
    """Distinct normalized messages by key, shared by every call of a run."""

    def __init__(self) -> None:
        self.messages: dict[bytes, dict[str, Any]] = {}
        self._wire: dict[bytes, bytes] = {}  # a wire message's JSON -> its key

    def add(self, message: dict[str, Any]) -> bytes:
        key = message_key(message)
        self.messages.setdefault(key, message)
        return key

    def add_wire(self, message: dict[str, Any]) -> bytes:
        """Normalize and add a message as the wire decoder gave it. A history resent on every call
        is the same messages again: they are recognised by their JSON (encoded in C), and
        normalized and keyed once."""
        raw = msgspec.json.encode(message)
        key = self._wire.get(raw)
        if key is None:
            key = self._wire[raw] = self.add(normalize_message(message))
        return key

    def get(self, key: bytes) -> dict[str, Any]:
        return self.messages[key]


@dataclass(slots=True)
class CapturedCall:
    """One exchange (an HTTP call, or one turn of a WebSocket connection), decoded and keyed."""

    request_id: str
    seq: int
    connection_turn: int  # 0 for HTTP
    run_id: str
    agent: str | None
    task_id: str
    turn: int | None
    api: str | None
    upstream_url: str | None
    started_at: float | None
    ended_at: float | None
    model: str | None
    usage: Usage
    keys: tuple[bytes, ...]  # the request's messages, as sent
    answer: dict[str, Any]  # the decoded answer, or a marker saying why there is none
    answered: bool
    error: str | None
    finish_reason: str | None
    problems: list[str]
    has_tools: bool
    response_id: str | None
    previous_response_id: str | None
    leading_system: bool  # the request's first message is its `instructions` (Responses)
    preamble: int = 0  # leading system messages of the request
    prompt: str | None = None  # legacy completions: the prompt text, which grows instead of a message list

    def chain_call(self) -> ChainCall:
        return ChainCall(
            scope=(self.run_id, self.task_id),
            order=(self.seq, self.connection_turn),
            keys=self.keys,
            answer=message_key(self.answer) if self.answered else None,
            model=self.model,
            has_tools=self.has_tools,
            response_id=self.response_id,
            previous_response_id=self.previous_response_id,
            leading_system=self.leading_system,
            preamble=self.preamble,
        )


@dataclass
class Conversation:
    """One chain of calls as a conversation: every message once, in order, stamped and attributed."""

    run_id: str
    task_id: str
    number: int  # 1-based position of the chain among its task's chains, by first call
    is_sidechain: bool
    calls: list[CapturedCall]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for call in self.calls:
            total.add(call.usage)
        return total

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(call.model for call in self.calls if call.model))

    @property
    def turns(self) -> list[int]:
        return sorted({call.turn for call in self.calls if call.turn is not None})


def provider_usage(raw: dict[str, Any]) -> Usage:
    """One provider usage object → our counters (input excludes cached tokens, as Anthropic reports)."""
    if not raw:
        return Usage()
    if "promptTokenCount" in raw or "candidatesTokenCount" in raw:  # Gemini usageMetadata
        cached = as_int(raw.get("cachedContentTokenCount"))
        prompt = as_int(raw.get("promptTokenCount"))
        return Usage(
            input_tokens=None if prompt is None else prompt - (cached or 0),
            output_tokens=as_int(raw.get("candidatesTokenCount")),
            cache_read_tokens=cached,
            reasoning_tokens=as_int(raw.get("thoughtsTokenCount")),
            total_tokens=as_int(raw.get("totalTokenCount")),
        )
    if "prompt_tokens" in raw:  # chat completions
        cached = as_int(as_dict(raw.get("prompt_tokens_details")).get("cached_tokens"))
        prompt = as_int(raw.get("prompt_tokens"))
        return Usage(
            input_tokens=None if prompt is None else prompt - (cached or 0),
            output_tokens=as_int(raw.get("completion_tokens")),
            cache_read_tokens=cached,
            reasoning_tokens=as_int(as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")),
            total_tokens=as_int(raw.get("total_tokens")),
        )
    if "cache_read_input_tokens" in raw or "cache_creation_input_tokens" in raw or "total_tokens" not in raw:
        return Usage(  # Anthropic messages: input already excludes the cache
            input_tokens=as_int(raw.get("input_tokens")),
            output_tokens=as_int(raw.get("output_tokens")),
            cache_read_tokens=as_int(raw.get("cache_read_input_tokens")),
            cache_write_tokens=as_int(raw.get("cache_creation_input_tokens")),
        )
    cached = as_int(as_dict(raw.get("input_tokens_details")).get("cached_tokens"))  # responses
    total_input = as_int(raw.get("input_tokens"))
    return Usage(
        input_tokens=None if total_input is None else total_input - (cached or 0),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_tokens=cached,
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("reasoning_tokens")),
        total_tokens=as_int(raw.get("total_tokens")),
    )


def normalize_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style message from the wire decoder → our fixed-key message (exporter.rollouts.record)."""
    role = as_str(message.get("role")) or "user"
    content = content_text(message.get("content"), brief=True)
    calls = [
        make_tool_call(as_str(call.get("id")), as_str(function.get("name")), function.get("arguments"))
        for call in map(as_dict, as_list(message.get("tool_calls")))
        for function in [as_dict(call.get("function"))]
    ]
    return make_message(
        "system" if role == "developer" else role,
        content,
        reasoning_content=as_str(message.get("reasoning_content")),
        tool_calls=calls,
        tool_call_id=as_str(message.get("tool_call_id")),
        name=as_str(message.get("name")),
        is_meta=role == "developer",
        is_error=True if message.get("is_error") is True else None,
    )


def _answer(decoded: DecodedResponse, failure: str | None, model: str | None) -> dict[str, Any]:
    """The assistant message a call got; for a failed call, what arrived plus why it failed."""
    message = normalize_message(decoded.to_message())
    message["model"] = model
    if failure is not None:
        message["content"] = join_text([message["content"], f"[call failed: {failure}]"])
        message["tool_calls"] = []  # a cut call's arguments are unfinished JSON; nothing answered them
        message["is_error"] = True
    return message


def _failure(decoded: DecodedResponse, status: int | None) -> str:
    """Why a failed call (`exporter.core.record.call_failed`) got no answer, in a few words."""
    if decoded.error is not None:
        return f"HTTP {status}: {decoded.error}" if status and status >= 400 else decoded.error
    return f"HTTP {status}" if status else "no response"


def same_turn(answer: dict[str, Any], resent: dict[str, Any]) -> bool:
    """The agent's copy of an answer, written differently (text trimmed or rewrapped, reasoning or
    ids dropped), as opposed to another message: an assistant message calling the same tools."""
    names = [call["function"]["name"] for call in answer["tool_calls"]]
    return resent["role"] == "assistant" and names == [c["function"]["name"] for c in resent["tool_calls"]]


def captured_calls(record: CaptureRecord, store: MessageStore) -> list[CapturedCall]:
    """The exchanges of one capture record, decoded, their messages added to `store`."""
    status = record.status_code
    started = record.captured_at
    ended = started + (record.duration_ms or 0.0) / 1000
    api = record.api
    calls = []
    exchanges = capture_exchanges(record)
    for position, exchange in enumerate(exchanges):
        body, decoded = exchange.body, exchange.decoded
        # The one failed-call rule, for the record; on a WebSocket its error ends the last turn.
        failed = record.failed and position == len(exchanges) - 1
        failure = _failure(decoded, status) if failed else None
        model = decoded.model or (record.served_model if len(exchanges) == 1 else None)
        model = model or request_model(record.url, body)
        usage = (record.usage or {}) if len(exchanges) == 1 else {}
        answer = _answer(decoded, failure, model)
        keys = tuple(store.add_wire(message) for message in request_messages(body, api))
        if failure is None:
            store.add(answer)  # a later stateful call's conversation includes it
        calls.append(
            CapturedCall(
                request_id=record.request_id,
                seq=record.seq,
                connection_turn=exchange.turn,
                run_id=record.run_id or "",
                agent=record.agent,
                task_id=record.task_id or UNTAGGED_TASK,
                turn=record.turn,
                api=api,
                upstream_url=record.upstream_url,
                started_at=exchange.sent_at if exchange.sent_at is not None else started,
                ended_at=_turn_end(exchanges, position, ended),
                model=model,
                usage=provider_usage(usage or decoded.usage or {}),
                keys=keys,
                answer=answer,
                answered=failure is None,
                error=failure,
                finish_reason=decoded.finish_reason,
                problems=list(decoded.problems),
                has_tools=bool(body.get("tools")),
                response_id=decoded.response_id,
                previous_response_id=as_str(body.get("previous_response_id")),
                leading_system=bool(as_str(body.get("instructions"))),
                preamble=preamble([store.get(key) for key in keys]),
                prompt=body["prompt"] if api == COMPLETIONS and isinstance(body.get("prompt"), str) else None,
            )
        )
    return calls


def _turn_end(exchanges: list[Exchange], position: int, record_end: float) -> float:
    """A WebSocket turn ends when the next one is sent; the last (and any HTTP call) with the record."""
    following = exchanges[position + 1].sent_at if position + 1 < len(exchanges) else None
    return following if following is not None else record_end


def conversations(records: Iterable[CaptureRecord]) -> list[Conversation]:
    """Every chain of the given records as a conversation, in order of (run, task, first call)."""
    store = MessageStore()
    calls: list[CapturedCall] = []
    for record in records:
        calls += captured_calls(record, store)
    _split_prompts(calls, store)
    return build_conversations(calls, store)


def _split_prompts(calls: list[CapturedCall], store: MessageStore) -> None:
    """Legacy completions send one growing prompt, not messages: cut each prompt after the longest
    earlier prompt (or prompt + answer) it starts with, so it reads as that call's messages plus a
    new user message, and chains like any other conversation."""
    seen: dict[Hashable, list[tuple[str, tuple[bytes, ...]]]] = {}
    for call in sorted((c for c in calls if c.prompt is not None), key=lambda c: (c.seq, c.connection_turn)):
        prompt = call.prompt or ""
        earlier = seen.setdefault((call.run_id, call.task_id), [])
        text, keys = max(
            ((t, k) for t, k in earlier if prompt.startswith(t)),
            key=lambda pair: len(pair[0]),
            default=("", ()),
        )
        rest = prompt[len(text) :]
        if text:
            call.keys = keys + (
                (store.add(normalize_message({"role": "user", "content": rest})),) if rest else ()
            )
        earlier.append((prompt, call.keys))
        if call.answered:
            earlier.append((prompt + call.answer["content"], (*call.keys, message_key(call.answer))))


def build_conversations(calls: list[CapturedCall], store: MessageStore) -> list[Conversation]:
    chain_calls = [call.chain_call() for call in calls]
    result = build_chains(chain_calls)
    numbers: dict[Hashable, int] = {}
    out = []
    first = [chain_calls[chain.calls[0]] for chain in result.chains]
    for position in sorted(range(len(result.chains)), key=lambda i: (first[i].scope, first[i].order)):
        chain = result.chains[position]
        members = [calls[index] for index in chain.calls]
        numbers[chain.scope] = numbers.get(chain.scope, 0) + 1
        steps = [
            (
                result.keys[index],
                [store.get(key) for key in result.keys[index]],
                chain_calls[index].answer,
                calls[index].answer,
            )
            for index in chain.calls
        ]
        messages = []
        for step, message in merge_transcript(steps, resends=same_turn):
            call = members[step]
            stamped = dict(message)
            stamped["timestamp"] = to_utc(call.ended_at if message is call.answer else call.started_at)
            messages.append(stamped)
        out.append(
            Conversation(
                run_id=members[0].run_id,
                task_id=members[0].task_id,
                number=numbers[chain.scope],
                is_sidechain=chain.is_sidechain,
                calls=members,
                messages=messages,
            )
        )
    return out
