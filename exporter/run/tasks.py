"""What `agentcap run` asks the agent: tasks, each one prompt per turn.

`--tasks FILE` holds one prompt per line (blank lines and `#` comments skipped), or JSON Lines with
`prompt` and optional `task_id` and `followups`. `--prompt TEXT` is one task. Without either the
agent runs once, attached to the terminal, untagged (an interactive session).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcap_addon.agentcap import sanitize_tag

from exporter.core.errors import UserError

DEFAULT_FOLLOWUP = "Continue."


@dataclass(frozen=True)
class Task:
    task_id: str | None  # None: the attached session, which we do not tag
    prompts: tuple[str, ...]  # turn 1's prompt, then each follow-up; empty for the attached session

    @property
    def attached(self) -> bool:
        return not self.prompts


@dataclass(frozen=True)
class _Entry:
    task_id: str | None
    prompt: str
    followups: tuple[str, ...]


def plan_tasks(
    tasks_file: Path | None, prompt: str | None, turns: int | None, followup: str | None
) -> list[Task]:
    if tasks_file is not None and prompt is not None:
        raise UserError("give --tasks FILE or --prompt TEXT, not both")
    if tasks_file is None and prompt is None:
        if turns is not None or followup is not None:
            raise UserError("--turns and --followup need prompts: add --tasks FILE or --prompt TEXT")
        return [Task(None, ())]
    entries = _read_tasks(tasks_file) if tasks_file is not None else [_Entry(None, prompt or "", ())]
    if not any(entry.prompt.strip() for entry in entries):
        raise UserError("the prompt is empty" if tasks_file is None else f"{tasks_file}: holds no tasks")
    width = max(2, len(str(len(entries))))
    tasks, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        task_id = entry.task_id or f"task-{number:0{width}d}"
        if task_id in seen:
            raise UserError(f"{tasks_file}: task_id {task_id!r} appears twice; task ids must be unique")
        seen.add(task_id)
        count = turns if turns is not None else 1 + len(entry.followups)
        fill = followup if followup is not None else DEFAULT_FOLLOWUP
        later = [*entry.followups[: count - 1], *[fill] * (count - 1 - len(entry.followups))]
        tasks.append(Task(task_id, (entry.prompt, *later)))
    return tasks


def _read_tasks(path: Path) -> list[_Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read --tasks {path}: {error}") from error
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if lines and lines[0][1].startswith("{"):
        return [_json_entry(path, number, line) for number, line in lines]
    return [_Entry(None, line, ()) for _, line in lines]


def _json_entry(path: Path, number: int, line: str) -> _Entry:
    where = f"{path}:{number}"
    try:
        item: Any = json.loads(line)
    except ValueError as error:
        raise UserError(f"{where}: not JSON ({error.args[0]}); one task object per line") from None
    if not isinstance(item, dict):
        raise UserError(f"{where}: expected a JSON object with prompt, task_id and followups")
    prompt, followups, given_id = item.get("prompt"), item.get("followups", []), item.get("task_id")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"{where}: prompt must be a non-empty string")
    if not isinstance(followups, list) or not all(isinstance(f, str) and f.strip() for f in followups):
        raise UserError(f"{where}: followups must be a list of non-empty strings")
    task_id = None
    if given_id is not None:
        task_id = sanitize_tag(str(given_id))
        if task_id is None:
            raise UserError(f"{where}: task_id {given_id!r} has no letters or digits to keep")
    return _Entry(task_id, prompt, tuple(followups))
