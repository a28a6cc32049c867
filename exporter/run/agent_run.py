"""`<run>/agent-run.json`: what `agentcap run` did, next to what the addon recorded.

run.json stays the addon's (the proxy's view: counts, upstreams, whether the recording finished);
this file is ours: the agent, its command, and each task's turns with exit code, duration and
status, the files holding each turn's stdout and stderr, and the native traces collected. It is
rewritten whole (atomically) after every turn, so a crash leaves the last complete state. It is
not published by `export` (nor are sessions/ and proxy.log): only captures, run.json and traces/.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AGENT_RUN_FILE = "agent-run.json"
AGENT_RUN_SCHEMA = "agentcap.agent-run/1"
SESSIONS_DIR = "sessions"


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AgentRunRecord:
    def __init__(self, run_path: Path, header: dict[str, Any], started_at: float) -> None:
        self.path = run_path / AGENT_RUN_FILE
        self.data: dict[str, Any] = {
            "schema": AGENT_RUN_SCHEMA,
            **header,
            "status": "running",
            "started_at": utc_iso(started_at),
            "ended_at": None,
            "tasks": [],
        }
        self.write()

    @property
    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.data["tasks"]
        return tasks

    def start_task(self, task_id: str | None, prompts: tuple[str, ...]) -> dict[str, Any]:
        task = {"task_id": task_id, "prompts": list(prompts), "status": "running", "turns": [], "traces": []}
        self.tasks.append(task)
        self.write()
        return task

    def add_turn(self, task: dict[str, Any], turn: dict[str, Any]) -> None:
        task["turns"].append(turn)
        self.write()

    def finish_task(self, task: dict[str, Any], status: str, traces: list[str]) -> None:
        task["status"], task["traces"] = status, traces
        self.write()

    def finish(self, status: str, ended_at: float) -> None:
        self.data["status"], self.data["ended_at"] = status, utc_iso(ended_at)
        self.write()

    def write(self) -> None:
        temporary = self.path.with_name(f".{AGENT_RUN_FILE}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")
        os.replace(temporary, self.path)
