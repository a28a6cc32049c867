"""Shared by the `agentcap run` tests: the installed CLI, canary scans, a run's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

AGENTCAP = str(Path(sys.executable).parent / "agentcap")


def agentcap_run(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`agentcap run ARGS` as a user types it: its own process, so /proc shows its real environment."""
    return subprocess.run(
        [AGENTCAP, "run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def user_env(**extra: str) -> dict[str, str]:
    """This environment without any real credential a developer may have exported, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.endswith(("_API_KEY", "_TOKEN"))}
    return env | extra


def files_holding(root: Path, needle: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "captures.jsonl").read_text().splitlines() if line]


def agent_run(run: Path) -> dict[str, Any]:
    return json.loads((run / "agent-run.json").read_text())
