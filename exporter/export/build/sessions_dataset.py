"""The `<base>-sessions` dataset: every captured conversation as one STS file the Hub's trace viewer renders.

Per exported run, under `sessions/<run_id>/`:
- `<task>.jsonl` for each task's main conversation and `<task>.side-<n>.jsonl` for its side chains
  (titles, summaries, sub-agents, one-offs), rebuilt from the captures (`exporter.rollouts.conversations`),
  whatever the wire API;
- `<agent>-<session>.jsonl` for each native session of an agent the viewer does not render
  (opencode, goose, Hermes keep SQLite), converted from the run's traces by the rollouts readers.
  The same files also go into that agent's traces dataset, next to the SQLite extracts, so that
  dataset renders and loads too.

File contents depend only on the run, so exporting the same run again writes the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.core.names import sessions_repo
from exporter.core.record import CAPTURES_FILE, TRACES_DIR
from exporter.export.build.cards import front_matter, traces_card
from exporter.export.build.run_stats import files_stats
from exporter.export.bundles import BuiltExport, BundleFile, write_bundle
from exporter.export.card_sections import PENDING, TASK_CATEGORIES, generated
from exporter.rollouts.base import SqliteFormat
from exporter.rollouts.hydrate import iter_rows
from exporter.rollouts.manifest import build_manifest
from exporter.rollouts.registry import FORMATS
from exporter.rollouts.sqlite_source import SnapshotStore
from exporter.rollouts.sts import dumps, session_lines
from exporter.shared.paths import contained, sanitize_name
from exporter.shared.runs import RunDir, Warn

SESSIONS_DIR = "sessions"
SESSIONS_GLOB = f"{SESSIONS_DIR}/**/*.jsonl"
# Agents whose native sessions the trace viewer does not render: their traces are SQLite.
CONVERTED_FORMATS = frozenset(name for name, fmt in FORMATS.items() if isinstance(fmt, SqliteFormat))


def safe_name(name: str) -> str:
    """A file name from data (task ids, session ids): the exporter's one naming rule, never empty."""
    return sanitize_name(name) or "_"


def session_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """Our header extras: where the session came from, its span, models, usage and calls."""
    meta = json.loads(row["source_meta"]) if row["source_meta"] else {}
    turns = meta.get("turns") or []
    return {
        "source": row["source_kind"],
        "run_id": row["source_path"].split("/", 1)[0],
        "task_id": meta.get("task_id"),
        "session_id": row["session_id"],
        "is_sidechain": row["is_sidechain"],
        "parent_session_id": row["parent_session_id"],
        "turns": [turns[0], turns[-1]] if turns else None,
        "started_at": _iso(row["started_at"]),
        "ended_at": _iso(row["ended_at"]),
        "model": row["model"],
        "models": row["models"],
        "usage": row["usage"],
        "messages": row["message_count"],
        "calls": meta.get("calls"),
        "failed_calls": meta.get("failed_calls"),
        "request_ids": meta.get("request_ids"),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def session_path(row: dict[str, Any], run: RunDir) -> str:
    folder = f"{SESSIONS_DIR}/{safe_name(run.run_id)}"
    if row["source_kind"] == "captures":
        meta = json.loads(row["source_meta"])
        task = safe_name(meta.get("task_id") or "untagged")  # None: calls without a task tag
        side = f".side-{meta['chain']}" if row["is_sidechain"] else ""
        return f"{folder}/{task}{side}.jsonl"
    return f"{folder}/{safe_name(row['agent'])}-{safe_name(row['session_id'])}.jsonl"


def run_session_rows(run: RunDir, *, staging: Path, warn: Warn) -> list[dict[str, Any]]:
    """The rollout rows of a run that become sessions: its captures' chains, its SQLite agents' sessions."""
    with SnapshotStore(staging) as snapshots:  # database snapshots stay in the private staging folder
        units = build_manifest([run.local / CAPTURES_FILE], "captures", snapshots=snapshots, warn=warn)
        if run.trace_files():  # raises on a link: the build refused those already
            native = build_manifest(
                [run.local / TRACES_DIR], "auto", snapshots=snapshots, warn=warn, file_pattern="*.db"
            )
            units += [unit for unit in native if unit.format in CONVERTED_FORMATS]
        rows = list(iter_rows(units, warn=warn))
    for row in rows:
        row["source_path"] = run.portable(row["source_path"])
    return rows


def _unique(path: str, taken: set[str]) -> str:
    """Two sessions whose names sanitize alike both keep a file: the second gets `-2`, and so on."""
    stem, candidate, number = path.removesuffix(".jsonl"), path, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}.jsonl"
    taken.add(candidate)
    return candidate


def write_run_sessions(
    run: RunDir, folder: Path, *, private: Path, warn: Warn
) -> tuple[list[BundleFile], list[BundleFile]]:
    """One (local) run's session files under `folder` (the sessions bundle's), from its build task;
    returns them all, and those converted from the agent's native sessions (for its traces dataset)."""
    files: list[BundleFile] = []
    native: list[BundleFile] = []
    taken: set[str] = set()
    for row in run_session_rows(run, staging=private, warn=warn):
        path = _unique(session_path(row, run), taken)
        target = contained(folder, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(session_lines(row, session_metadata(row))), encoding="utf-8")
        file = BundleFile(path=path, run_id=run.run_id)
        files.append(file)
        if row["source_kind"] != "captures":
            native.append(file)
    return files, native


def add_sessions(built: BuiltExport) -> None:
    """Seal `<base>-sessions` from the session files the runs' build tasks wrote, and put the
    converted native sessions (per agent) into their traces datasets."""
    name = sessions_repo(built.base)
    bundle = write_bundle(
        kind="sessions",
        name=name,
        folder=built.bundle_folder(name),
        files=built.sessions,
        card=sessions_card(built),
        base=built.base,
        run_stats=files_stats(
            ((file.run_id, built.bundle_folder(name) / file.path) for file in built.sessions), built.runs
        ),
    )
    for position, traces in enumerate(built.bundles):
        extra = built.native_sessions.get(traces.agent or "") if traces.kind == "traces" else None
        if not extra:
            continue
        for file in extra:
            target = contained(traces.folder, file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bundle.local_path(file).read_bytes())
        merged = [*traces.files, *extra]
        built.bundles[position] = write_bundle(
            kind="traces",
            name=traces.name,
            folder=traces.folder,
            files=merged,
            card=traces_card(built.owner, built.base, traces.agent or "", [f.path for f in merged]),
            agent=traces.agent,
            base=traces.base,
            run_stats=files_stats(((f.run_id, traces.folder / f.path) for f in merged), built.runs),
            front=traces.front,
        )
    built.bundles.append(bundle)


def sessions_card(built: BuiltExport) -> str:
    repo_id = f"{built.owner}/{sessions_repo(built.base)}"
    front = front_matter(
        pretty_name=f"{built.base} sessions",
        task_categories=TASK_CATEGORIES,
        tags=["agent-traces", "agentcap", "agentcap-sessions", "conversations", "agents"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": SESSIONS_GLOB}]}],
    )
    return f"""{front}
# {built.base}: agent sessions

Every conversation the agents had during the exported runs, one file per session in the
Session Trace Simple Format (STS), which the Hub's trace
viewer renders: open a row in the Data Studio to read the session as a chat, with the
reasoning, every tool call and its result, the model of each answer and when it came.

Built by agentcap from the LLM calls it recorded (so
every agent appears, whatever it is and whichever API it spoke: chat completions, Responses over
HTTP or WebSocket, Anthropic Messages, legacy completions, Gemini), plus the native sessions of
agents that keep them in SQLite (opencode, goose, Hermes). One folder per run under
`sessions/<run_id>/`:

| file | what it holds |
|---|---|
| `<task>.jsonl` | the task's main conversation: every call of the agent's loop laid end to end, each message once, in order |
| `<task>.side-<n>.jsonl` | a side conversation of the same task: a title or summary call, a sub-agent, a one-off question to another model |
| `<agent>-<session>.jsonl` | a native opencode / goose / Hermes session, converted |

Line 1 of each file is the session header: `harness` (the agent), `id`, `name` (a short title from
the first prompt) and `agentcap` (JSON text, `json.loads` it): the run and task, the turns covered, models, token usage totals,
the request ids of the calls (join them to the captures dataset's `request_id`), and whether it is
a side chain. Then one line per message: `role`, `content`, `reasoningContent`, `toolCalls`
(arguments as a JSON string), `toolCallId`, `timestamp` (epoch ms), `model`. A call that failed
shows as an assistant message saying why, with `isError: true`. Images and other non-text parts
appear as short placeholders such as `[image]`.

## Load it

`datasets` (5.2, the version agentcap tests, and later) recognises agent traces and hands them to
[`teich`](https://pypi.org/project/teich/) to build one row per session (`pip install teich`):

```python
from datasets import load_dataset

sessions = load_dataset("{repo_id}", split="train")  # needs: pip install teich
print(sessions[0]["session_id"], sessions[0]["prompt"])
```

Without `teich`, read the lines themselves, one row per line (header or message):

```python
lines = load_dataset("{repo_id}", split="train", parse_agent_traces=False)
```

Or plain JSON, one file at a time:

```python
import json
from huggingface_hub import hf_hub_download

path = hf_hub_download("{repo_id}", "sessions/<run_id>/<task>.jsonl", repo_type="dataset")
header, *messages = [json.loads(line) for line in open(path, encoding="utf-8")]
```

```sql
-- DuckDB: every message of every session, with its file
SELECT filename, message.role, message.content
FROM read_json('hf://datasets/{repo_id}/sessions/**/*.jsonl', filename = true, union_by_name = true)
WHERE type = 'message';
```

{generated("stats", PENDING)}

{generated("scan", PENDING)}
"""
