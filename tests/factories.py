"""Build capture records and run directories in the documented format (docs/capture-format.md).

Tests of the exporter, scan, rollouts and inspect use these instead of running the proxy, so they
stay fast. Both are held to the capture contract (`exporter.core.record`): `make_record` and
`write_run` validate what they build with it and fail on a record or run.json the contract
rejects, and tests/test_capture_contract.py holds the real addon's lines to the same contract.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec

from exporter.core.record import CaptureRecord, call_failed, validate_record, validate_run_info

CANARY_KEY = "sk-test-canary-0123456789abcdef0123456789abcdef"
BASE_TIME = 1_763_712_900.0


def sse_chat_stream(text: str, model: str = "gpt-test-2026", usage: dict[str, int] | None = None) -> str:
    """An OpenAI chat-completions SSE body that streams `text` word by word."""
    chunks = [{"id": "c1", "model": model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [
        {"id": "c1", "model": model, "choices": [{"index": 0, "delta": {"content": word}}]}
        for word in text.split(" ")
    ]
    chunks.append(
        {"id": "c1", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    if usage:
        chunks.append({"id": "c1", "model": model, "choices": [], "usage": usage})
    lines = [f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n" for chunk in chunks]
    return "".join(lines) + "data: [DONE]\n\n"


def make_record(
    *,
    seq: int = 1,
    run_id: str = "demo-20261121T081500-a1b2c3",
    agent: str = "demo",
    task_id: str | None = "task-1",
    turn: int | None = 1,
    model: str = "org/gpt-test",
    messages: list[dict[str, Any]] | None = None,
    upstream_url: str = "http://127.0.0.1:9000",
    api: str = "chat.completions",
    stream: bool = False,
    reply: str = "hello there",
    status_code: int = 200,
    error: dict[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One `agentcap.capture/1` record. `error` without a response: pass status_code=0."""
    messages = messages if messages is not None else [{"role": "user", "content": f"prompt {seq}"}]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if stream:
        body["stream"] = True
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    response: dict[str, Any] | None
    if status_code == 0:
        response = None
        usage = None
    elif stream:
        raw = sse_chat_stream(reply, model=model + "-served", usage=usage)
        response = {
            "status_code": status_code,
            "headers": [["content-type", "text/event-stream"]],
            "content_encoding": None,
            "size": len(raw.encode()),
            "wire_size": len(raw.encode()),
            "stream": True,
            "raw": raw,
        }
    else:
        response_body = (
            {
                "id": "cmpl-1",
                "model": model + "-served",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
            if status_code < 400
            else {"error": {"message": "scripted failure"}}
        )
        size = len(json.dumps(response_body).encode())
        response = {
            "status_code": status_code,
            "headers": [["content-type", "application/json"]],
            "content_encoding": None,
            "size": size,
            "wire_size": size,
            "stream": False,
            "body": response_body,
        }
        if status_code >= 400:
            usage = None
    request_size = len(json.dumps(body).encode())
    record = {
        "schema": "agentcap.capture/1",
        "request_id": request_id or uuid.uuid4().hex,
        "seq": seq,
        "run_id": run_id,
        "agent": agent,
        "task_id": task_id,
        "turn": turn,
        "api": api,
        "transport": "http",
        "method": "POST",
        "url": upstream_url + "/v1/chat/completions",
        "upstream_url": upstream_url,
        "http_version": "HTTP/1.1",
        "captured_at": BASE_TIME + seq,
        "ttfb_ms": None if response is None else 12.5,
        "duration_ms": 40.25,
        "request": {
            "headers": [["content-type", "application/json"], ["authorization", "<redacted:0123456789ab>"]],
            "content_encoding": None,
            "size": request_size,
            "wire_size": request_size,
            "body": body,
        },
        "response": response,
        "served_by": None if response is None else "fake-edge-1",
        "served_build_info": None if response is None else "fake-build-42",
        "served_model": None if response is None else model + "-served",
        "usage": usage,
        "error": error,
    }
    validate_record(encode(record))  # a record the contract rejects fails here, not in a reader
    return record


def encode(record: dict[str, Any]) -> bytes:
    """One captures.jsonl line, encoded as the addon encodes it (compact, UTF-8)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def typed(record: dict[str, Any]) -> CaptureRecord:
    """The record as readers get it from a line (`exporter.core.record.CaptureRecord`)."""
    return msgspec.json.decode(encode(record), type=CaptureRecord)


def write_run(
    runs_dir: Path,
    run_id: str,
    records: list[dict[str, Any]],
    *,
    agent: str = "demo",
    traces: dict[str, str | bytes] | None = None,
) -> Path:
    """Write runs_dir/run_id/{captures.jsonl, run.json, traces/...}; returns the run directory."""
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "captures.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            record = record | {"run_id": run_id, "agent": agent}
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    upstreams = sorted({r["upstream_url"] for r in records})
    run_json = {
        "schema": "agentcap.run/1",
        "run_id": run_id,
        "agent": agent,
        "status": "complete",
        "started_at": "2025-11-21T08:15:00Z",
        "ended_at": "2025-11-21T08:25:00Z",
        "upstreams": upstreams,
        "counts": {
            "recorded": len(records),
            "failed": sum(
                1
                for r in records
                if call_failed(
                    error=r["error"] is not None, status_code=(r["response"] or {}).get("status_code")
                )
            ),
            "errors": sum(1 for r in records if r["error"]),
            "http_errors": sum(1 for r in records if (r["response"] or {}).get("status_code", 0) >= 400),
            "passthrough": 0,
            "lost": 0,
        },
        "addon_version": "0.1.0",
        "mitmproxy_version": "12.2.3",
    }
    (run_dir / "run.json").write_text(json.dumps(run_json, indent=2) + "\n")
    validate_run_info((run_dir / "run.json").read_bytes())
    for relative, content in (traces or {}).items():
        path = run_dir / "traces" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return run_dir


def export_parquet(run_dir: Path, out_dir: Path) -> list[Path]:
    """The run's captures as parquet files, written by the real exporter (one per model/upstream)."""
    from exporter.export.build.captures_parquet import index_run, write_group
    from exporter.shared.runs import RunDir

    run = RunDir.load(run_dir)
    paths = []
    for number, group in enumerate(index_run(run).groups.values()):
        path = out_dir / f"train-{run.run_id}-{number}.parquet"
        write_group(run, group, path)
        paths.append(path)
    return paths


def conversation_run(
    runs_dir: Path, run_id: str = "demo-20251121T081500-a1b2c3"
) -> tuple[Path, list[dict[str, Any]]]:
    """A run that looks like an agent at work; returns (run dir, records in seq order).

    task-1: a user prompt, a tool call and its result (the history grows: init 1, +2, +2), then a
    compaction that keeps the first prompt and replaces the rest by a summary (-4 +1); calls 2
    and 4 are streamed. task-2: a 500 answer and its retry, whose upstream reset (no response). Text includes non-ASCII ("Straße", "日本").
    """
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": '{"path":"README.md"}'},
    }
    turn1 = [{"role": "user", "content": "Fix the failing tests in Straße.py"}]
    turn2 = [
        *turn1,
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "# README\nsee 日本 docs"},
    ]
    turn3 = [
        *turn2,
        {"role": "assistant", "content": "Fixed."},
        {"role": "user", "content": "now add a changelog"},
    ]
    compacted = [*turn1, {"role": "user", "content": "Summary so far: tests fixed; add a changelog"}]
    records = [
        make_record(seq=1, messages=turn1, turn=1, reply="I will read the README"),
        make_record(
            seq=2, messages=turn2, turn=1, stream=True, reply="Fixed."
        ),  # one word: the factory streams words
        make_record(seq=3, messages=turn3, turn=2, reply="Changelog added."),
        make_record(seq=4, messages=compacted, turn=3, stream=True, reply="Done."),
        make_record(
            seq=5, task_id="task-2", messages=[{"role": "user", "content": "deploy it"}], status_code=500
        ),
        make_record(
            seq=6,
            task_id="task-2",
            status_code=0,
            messages=[{"role": "user", "content": "deploy it"}],
            error={"kind": "upstream_reset", "message": "peer closed"},
        ),
    ]
    return write_run(runs_dir, run_id, records), records
