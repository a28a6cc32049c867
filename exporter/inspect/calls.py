"""One recorded call as the browser shows it, whether it came from a run or a parquet row.

A long run resends its whole history on every call, so a 1 GB run holds only a few MB of
distinct messages. Calls keep their messages as ids into a shared `MessageStore`: each distinct
message is held once, and the request bodies are dropped as soon as they are read.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import msgspec

from exporter.core.chains import ChainCall, Delta, build_chains, message_key, preamble
from exporter.core.record import CaptureRecord, call_failed
from exporter.core.values import as_dict, as_float, as_int, as_str
from exporter.shared.wire import DecodedResponse, decode_record, request_messages

REDACTED_PREFIX = "<redacted:"


class MessageStore:
    """Distinct messages by digest, shared by every call of a source."""

    def __init__(self) -> None:
        self._messages: dict[bytes, dict[str, Any]] = {}
        self._keys: dict[bytes, bytes] = {}

    def add(self, messages: list[dict[str, Any]]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """(ids, comparison keys) of `messages`, storing the ones not seen yet."""
        ids, keys = [], []
        for message in messages:
            digest = hashlib.blake2b(msgspec.json.encode(message, order="sorted"), digest_size=16).digest()
            if digest not in self._messages:
                self._messages[digest] = message
                self._keys[digest] = message_key(message)
            ids.append(digest)
            keys.append(self._keys[digest])
        return tuple(ids), tuple(keys)

    def get(self, ids: tuple[bytes, ...]) -> list[dict[str, Any]]:
        return [self._messages[digest] for digest in ids]


@dataclass(eq=False)
class Call:
    request_id: str
    seq: int | None
    run_id: str | None
    agent: str | None
    task_id: str | None
    turn: int | None
    api: str | None
    model: str
    served_model: str | None
    captured_at: float | None
    status_code: int | None
    error: dict[str, Any] | None
    ttfb_ms: float | None
    duration_ms: float | None
    request_size: int | None
    response_size: int | None
    stream: bool
    upstream_url: str | None
    usage: dict[str, Any] | None
    response: Any  # what `wire.decode_response` takes
    websocket: dict[str, Any] | None
    request_headers: list[list[str]] | None  # None: the source does not keep headers (parquet)
    response_headers: list[list[str]] | None
    store: MessageStore
    message_ids: tuple[bytes, ...]
    message_keys: tuple[bytes, ...]
    has_tools: bool = False
    previous_response_id: str | None = None
    preamble: int = 0  # leading system messages
    line: int | None = None  # line in captures.jsonl, to match scan findings
    index: int = 0  # 1-based position among the calls of its run and task
    # against the previous call of its conversation chain
    change: Delta = field(default_factory=lambda: Delta(0, 0, 0, first=True))
    chain: int = 0  # 1-based position of its conversation chain among the task's chains
    sidechain: bool = False
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def loc(self) -> str:
        return f"{self.task_id or '-'}.{self.index}"

    @property
    def short_id(self) -> str:
        return self.request_id[:8]

    @property
    def failed(self) -> bool:
        return call_failed(error=bool(self.error), status_code=self.status_code)

    @property
    def status(self) -> str:
        if self.error:
            return str(self.error.get("kind") or "error")
        return str(self.status_code) if self.status_code is not None else "-"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.store.get(self.message_ids)

    @property
    def redacted_headers(self) -> list[str] | None:
        if self.request_headers is None and self.response_headers is None:
            return None
        headers = [*(self.request_headers or []), *(self.response_headers or [])]
        return sorted({str(name) for name, value, *_ in headers if str(value).startswith(REDACTED_PREFIX)})

    @cached_property
    def decoded(self) -> DecodedResponse:
        return decode_record(
            {"api": self.api, "response": self.response, "websocket": self.websocket, "error": self.error}
        )

    @classmethod
    def from_record(cls, record: CaptureRecord, store: MessageStore, line: int | None = None) -> Call:
        """From a `captures.jsonl` record (docs/capture-format.md)."""
        request, response = record.request, record.response
        body = record.request_body()
        messages = request_messages(body, record.api)
        ids, keys = store.add(messages)
        return cls(
            request_id=record.request_id,
            seq=record.seq,
            run_id=record.run_id,
            agent=record.agent,
            task_id=record.task_id,
            turn=record.turn,
            api=record.api,
            model=record.model(),
            served_model=record.served_model,
            captured_at=record.captured_at,
            status_code=record.status_code,
            error=msgspec.to_builtins(record.error) if record.error else None,
            ttfb_ms=record.ttfb_ms,
            duration_ms=record.duration_ms,
            request_size=request.size if request else None,
            response_size=response.size if response else None,
            stream=bool(response and response.stream),
            upstream_url=record.upstream_url,
            usage=record.usage or None,
            response=response.as_dict() if response else None,
            websocket=msgspec.to_builtins(record.websocket) if record.websocket else None,
            request_headers=[list(pair) for pair in request.headers] if request else [],
            response_headers=[list(pair) for pair in response.headers] if response else [],
            store=store,
            message_ids=ids,
            message_keys=keys,
            has_tools=bool(body.get("tools")),
            previous_response_id=as_str(body.get("previous_response_id")),
            preamble=preamble(messages),
            line=line,
        )

    @classmethod
    def from_parquet_row(cls, row: dict[str, Any], store: MessageStore) -> Call:
        """From a row of the captures parquet schema (exporter/schema.py): JSON strings for bodies."""
        body = as_dict(_loads(row.get("request")))
        response = _loads(row.get("response"))
        websocket = as_dict(response).get("websocket") if isinstance(response, dict) else None
        messages = request_messages(body, row.get("api"))
        ids, keys = store.add(messages)
        captured = row.get("captured_at")
        return cls(
            request_id=str(row.get("request_id") or ""),
            seq=as_int(row.get("seq")),
            run_id=row.get("run_id"),
            agent=row.get("agent"),
            task_id=row.get("task_id"),
            turn=as_int(row.get("turn")),
            api=row.get("api"),
            model=str(row.get("model") or _model(body, row.get("served_model"))),
            served_model=row.get("served_model"),
            captured_at=captured.timestamp() if isinstance(captured, datetime) else as_float(captured),
            status_code=as_int(row.get("status_code")),
            error=as_dict(_loads(row.get("error"))) or None,
            ttfb_ms=as_float(row.get("ttfb_ms")),
            duration_ms=as_float(row.get("duration_ms")),
            request_size=len(row["request"].encode()) if isinstance(row.get("request"), str) else None,
            response_size=len(row["response"].encode()) if isinstance(row.get("response"), str) else None,
            stream=bool(row.get("stream")),
            upstream_url=row.get("upstream_url"),
            usage=as_dict(_loads(row.get("usage"))) or None,
            response=None if websocket else response,
            websocket=as_dict(websocket) or None,
            request_headers=None,
            response_headers=None,
            store=store,
            message_ids=ids,
            message_keys=keys,
            has_tools=bool(body.get("tools")),
            previous_response_id=as_str(body.get("previous_response_id")),
            preamble=preamble(messages),
        )


def label_calls(calls: list[Call]) -> list[Call]:
    """Sort by run and arrival, number each task's calls, and label each call's change against
    the previous call of its conversation chain (exporter/core/chains.py: side calls are their own)."""
    ordered = sorted(
        calls, key=lambda c: (c.run_id or "", c.seq if c.seq is not None else 0, c.captured_at or 0)
    )
    counts: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for call in ordered:
        counts[(call.run_id, call.task_id)] += 1
        call.index = counts[(call.run_id, call.task_id)]
    chain_calls = [
        ChainCall(
            scope=(call.run_id or "", call.task_id or ""),
            order=(call.index,),
            keys=call.message_keys,
            answer=None if call.failed else message_key(call.decoded.to_message()),
            model=call.model,
            has_tools=call.has_tools,
            response_id=call.decoded.response_id,
            previous_response_id=call.previous_response_id,
            preamble=call.preamble,
        )
        for call in ordered
    ]
    result = build_chains(chain_calls)
    numbers: dict[int, int] = {}
    per_task: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for position, call in enumerate(ordered):
        chain = result.chain_of[position]
        if chain not in numbers:
            per_task[(call.run_id, call.task_id)] += 1
            numbers[chain] = per_task[(call.run_id, call.task_id)]
        call.chain, call.sidechain = numbers[chain], result.chains[chain].is_sidechain
        change = result.deltas[position]
        if result.keys[position] != call.message_keys:
            # Stateful (previous_response_id): it sent only what is new.
            change = Delta(kept=0, removed=0, added=len(call.message_keys), first=change.first)
        call.change = change
    return ordered


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"unparsed": text}


def _model(body: dict[str, Any], served_model: Any) -> str:
    model = body.get("model")
    return model if isinstance(model, str) and model else str(served_model or "")
