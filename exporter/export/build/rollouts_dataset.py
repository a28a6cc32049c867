"""The `<base>-rollouts` dataset of `agentcap export --rollouts`: the exported runs' traces and captures
normalized into rollout rows (one parquet per run under `data/`), with a card carrying the row schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from exporter.core.names import rollouts_repo
from exporter.core.record import CAPTURES_FILE, TRACES_DIR
from exporter.export.build.cards import column_table, front_matter
from exporter.export.build.run_stats import rollouts_stats
from exporter.export.bundles import BuiltExport, BundleFile, RepoBundle, write_bundle
from exporter.export.card_sections import PENDING, TASK_CATEGORIES, generated
from exporter.rollouts.arrow_schema import ROLLOUT_SCHEMA
from exporter.rollouts.hydrate import iter_rows
from exporter.rollouts.manifest import build_manifest
from exporter.rollouts.sqlite_source import SnapshotStore
from exporter.rollouts.writers import write_parquet
from exporter.shared.paths import contained
from exporter.shared.runs import RunDir

COLUMN_DESCRIPTIONS: dict[str, str] = {
    "trace_id": "unique id: `<agent>:<session id>[:<subagent id>]` (`captures:<run>:<task>[:<n>]` for captures)",
    "agent": "agent that produced the trace (claude_code, codex, opencode, pi, hermes, goose, or the run's)",
    "agent_version": "agent version recorded in the trace",
    "source_kind": "format read (DataDesigner's value where it has one: claude_code, codex, pi_coding_agent, …)",
    "source_path": "file the rollout came from (`<run_id>/<path in the run>` in this dataset)",
    "session_id": "the agent's session id",
    "root_session_id": "top of the session chain (the session a subagent or continuation belongs to)",
    "parent_session_id": "session that spawned or preceded this one",
    "agent_id": "subagent id (Claude Code sidechains)",
    "is_sidechain": "true for subagent runs and for a task's side conversations (titles, summaries, one-offs)",
    "title": "session title or summary the agent recorded",
    "cwd": "working directory",
    "project_path": "project root (Claude's index / opencode's worktree), else cwd",
    "git_branch": "git branch recorded by the agent",
    "model": "model that answered most assistant messages",
    "models": "every model seen, in order",
    "provider": "model provider or upstream",
    "started_at": "first instant of the session (UTC)",
    "ended_at": "last instant of the session (UTC)",
    "messages": "OpenAI-style messages: role, content, reasoning_content, tool_calls (arguments as JSON "
    "strings), tool_call_id, name, timestamp, model, is_meta (injected context), is_error",
    "message_count": "number of messages",
    "turn_count": "user messages typed by the user (not is_meta)",
    "tool_call_count": "tool calls made by the assistant",
    "tool_error_count": "tool results that reported an error",
    "first_user_message": "first real user message",
    "final_assistant_message": "last assistant message with text",
    "usage": "input/output/cache/reasoning/total tokens and cost in USD, where the trace records them",
    "branch_policy": "how the conversation was chosen in a tree-shaped trace (`active_path` or `file_order`)",
    "is_partial": "the trace ended in a cut line (agent killed mid-write)",
    "parse_warnings": "lines or items skipped while reading",
    "source_meta": "format-specific extras as a JSON string",
}


def write_run_rollouts(
    run: RunDir, folder: Path, *, private: Path, warn: Callable[[str], None]
) -> BundleFile | None:
    """One (local) run's captures and traces normalized into `folder/data/<run_id>.parquet`.

    Database snapshots go to a private folder under `private` (the export's staging). None: no rows.
    """
    path = f"data/{run.run_id}.parquet"
    with SnapshotStore(private) as snapshots:
        units = build_manifest([run.local / CAPTURES_FILE], "captures", snapshots=snapshots, warn=warn)
        if run.trace_files():  # raises on a link: the build refused those already
            units += build_manifest([run.local / TRACES_DIR], "auto", snapshots=snapshots, warn=warn)
        count = write_parquet(_portable(iter_rows(units, warn=warn), run), contained(folder, path))
    if count:
        return BundleFile(path=path, run_id=run.run_id)
    contained(folder, path).unlink(missing_ok=True)
    return None


def rollouts_bundle(built: BuiltExport, files: list[BundleFile]) -> RepoBundle:
    """Seal the `<base>-rollouts` bundle from the files the runs' build tasks wrote."""
    name = rollouts_repo(built.base)
    folder = built.bundle_folder(name)
    return write_bundle(
        kind="rollouts",
        name=name,
        folder=folder,
        files=files,
        card=rollouts_card(built),
        base=built.base,
        run_stats=rollouts_stats({file.run_id: folder / file.path for file in files}),
    )


def _portable(rows: Iterator[dict[str, Any]], run: RunDir) -> Iterator[dict[str, Any]]:
    """Source paths relative to the run: the exporting machine's directories stay private."""
    for row in rows:
        row["source_path"] = run.portable(row["source_path"])
        yield row


def rollouts_card(built: BuiltExport) -> str:
    front = front_matter(
        pretty_name=f"{built.base} rollouts",
        task_categories=TASK_CATEGORIES,
        tags=["agentcap", "agentcap-rollouts", "agent-traces", "conversations", "agents"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    table = column_table(
        (field.name, field.type, COLUMN_DESCRIPTIONS[field.name]) for field in ROLLOUT_SCHEMA
    )
    return f"""{front}
# {built.base}: agent rollouts

One row per conversation (a session, a subagent run, or one task of a captured run), normalized by
`agentcap rollouts` from the agents' own traces and from agentcap's wire captures into one shape
(DataDesigner's AgentRollout columns plus model, usage and diagnostics). One parquet file per run
under `data/`; `source_meta` is JSON text. Join to the captures dataset on the run id (the first
part of `source_path`).

```python
from datasets import load_dataset

rollouts = load_dataset("{built.owner}/{rollouts_repo(built.base)}", split="train")
print(rollouts[0]["trace_id"], rollouts[0]["messages"][0]["content"])
```

{generated("stats", PENDING)}

## Columns

{table}

{generated("scan", PENDING)}
"""
