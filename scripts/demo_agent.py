"""A tiny scripted coding agent for the demo: the real `openai` SDK in a tool-use loop.

Two tasks × two turns. Each turn sends the user's message with a `read_file` tool; the model asks
for the tool, the agent answers with the file's (canned) content, and the model replies in text.
Turn 1 is non-streamed, turn 2 streamed (tool-call deltas reassembled), so the captures hold both
kinds. Every call is tagged with `X-Agentcap-Task` (client default header) and `X-Agentcap-Turn`
(per-request header). With --traces-dir, the agent also writes its own session log per task in the
Session Trace Simple Format, the way a real agent leaves native traces next to the run.

    python scripts/demo_agent.py --base-url http://127.0.0.1:8080/v1 [--traces-dir runs/<run>/traces]

Without --base-url it reads OPENAI_BASE_URL and OPENAI_API_KEY, as `agentcap run --agent generic` sets
them (the key is then the run's placeholder, which the proxy swaps for the real one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

MODEL = "demo-org/demo-coder-1"
TASKS = {
    "task-readme": ["Summarise README.md in one sentence.", "Now list the commands it mentions."],
    "task-tests": ["Which test file covers the exporter?", "What does its first test check?"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file of the repository.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
PLACEHOLDER_KEY = "sk-demo-placeholder-not-a-real-key"  # the fake server accepts anything


def read_file(path: str) -> str:
    return f"# {path}\nagentcap records every LLM call an agent makes. Commands: demo, export, ls."


def complete(client: OpenAI, messages: list[dict[str, Any]], *, turn: int, stream: bool) -> dict[str, Any]:
    """One call; returns the assistant message as a dict (tool calls reassembled from a stream)."""
    headers = {"X-Agentcap-Turn": str(turn)}
    if not stream:
        response = client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=TOOLS,
            extra_headers=headers,  # type: ignore[arg-type]
        )
        return response.choices[0].message.model_dump(exclude_none=True)
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    chunks = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    for chunk in chunks:
        for choice in chunk.choices:
            message["content"] += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(
                    delta.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] = delta.id or call["id"]
                if delta.function:
                    call["function"]["name"] += delta.function.name or ""
                    call["function"]["arguments"] += delta.function.arguments or ""
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return message


def run_task(client: OpenAI, prompts: list[str], trace: list[dict[str, Any]]) -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful coding agent."}]
    for turn, prompt in enumerate(prompts, start=1):
        messages.append({"role": "user", "content": prompt})
        trace.append({"role": "user", "content": prompt})
        while True:
            reply = complete(client, messages, turn=turn, stream=turn == 2)
            messages.append(reply)
            trace.append(_trace_message(reply))
            if not reply.get("tool_calls"):
                print(f"  turn {turn}: {reply.get('content', '').strip()}")
                break
            for call in reply["tool_calls"]:
                output = read_file(json.loads(call["function"]["arguments"] or "{}").get("path", "?"))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
                trace.append({"role": "tool", "toolCallId": call["id"], "content": output})


def _trace_message(reply: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or "", "model": MODEL}
    if reply.get("tool_calls"):
        message["toolCalls"] = [{"id": c["id"], "function": c["function"]} for c in reply["tool_calls"]]
    return message


def write_trace(traces_dir: Path, task: str, messages: list[dict[str, Any]]) -> None:
    """One Session Trace Simple Format file: a session header, then one line per message."""
    traces_dir.mkdir(parents=True, exist_ok=True)
    lines = [{"type": "session", "harness": "agentcap-demo", "id": task, "name": task}]
    now = int(time.time() * 1000)
    lines += [{"type": "message", "message": message | {"timestamp": now}} for message in messages]
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    (traces_dir / f"{task}.jsonl").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", help="the proxy's OpenAI-compatible base URL (…/v1); default $OPENAI_BASE_URL"
    )
    parser.add_argument("--traces-dir", type=Path, help="write one session trace per task here")
    args = parser.parse_args()
    # The environment's key only with the environment's URL: never send a real key to a URL given here.
    base_url, api_key = args.base_url, PLACEHOLDER_KEY
    if base_url is None:
        base_url, api_key = (
            os.environ.get("OPENAI_BASE_URL"),
            os.environ.get("OPENAI_API_KEY", PLACEHOLDER_KEY),
        )
    if not base_url:
        parser.error("give --base-url or set OPENAI_BASE_URL")
    for task, prompts in TASKS.items():
        print(f"{task}:")
        client = OpenAI(base_url=base_url, api_key=api_key, default_headers={"X-Agentcap-Task": task})
        trace: list[dict[str, Any]] = []
        run_task(client, prompts, trace)
        if args.traces_dir:
            write_trace(args.traces_dir, task, trace)


if __name__ == "__main__":
    main()
