"""Dataset cards (README.md) for the captures and traces datasets.

Seeded once: an existing card is never overwritten (people edit them), so everything a reader needs
to use the data is in the first version: the schema table comes from `exporter.export.build.dataset_schema`, so the card
cannot drift from the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from huggingface_hub import DatasetCardData

from exporter.export.build.dataset_schema import COLUMN_DESCRIPTIONS, COLUMN_NAMES, type_name

HUB = "https://huggingface.co/datasets"


def captures_repo(base: str) -> str:
    return f"{base}-captures"


def traces_repo(base: str, agent: str) -> str:
    return f"{base}-{agent}-traces"


def sessions_repo(base: str) -> str:
    return f"{base}-sessions"


def rollouts_repo(base: str) -> str:
    return f"{base}-rollouts"


def front_matter(**fields: Any) -> str:
    """The card's YAML header, written by huggingface_hub's own DatasetCardData."""
    return "---\n" + DatasetCardData(**fields).to_yaml() + "\n---\n"


def column_table(columns: Iterable[tuple[str, object, str]]) -> str:
    """The `## Columns` table of every card: (name, type, meaning) per column, in schema order."""
    rows = [f"| `{name}` | `{kind}` | {meaning} |" for name, kind, meaning in columns]
    return "\n".join(["| column | type | meaning |", "|---|---|---|", *rows])


def schema_table() -> str:
    """The captures dataset's columns (also in docs/export.md; a test keeps the two equal)."""
    return column_table((name, type_name(name), COLUMN_DESCRIPTIONS[name]) for name in COLUMN_NAMES)


def captures_card(owner: str, base: str, agents: Sequence[str]) -> str:
    repo_id = f"{owner}/{captures_repo(base)}"
    traces = [f"{owner}/{traces_repo(base, agent)}" for agent in agents]
    trace_links = "\n".join(f"- [{repo}]({HUB}/{repo})" for repo in traces) or "- (none yet)"
    front = front_matter(
        pretty_name=f"{base} captures",
        tags=["agentcap", "agentcap-captures", "llm-calls", "agents"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    return f"""{front}
# {base}: LLM calls captured with agentcap

Every LLM call a coding agent made, recorded by the agentcap
proxy: one row per call, with the exact request body, the response body (or the raw stream), the
task and turn it belonged to, latency, usage and errors. Each parquet file holds one run's calls to
one model at one upstream, sorted by `seq` (arrival order).

The agents' own session logs are in the traces datasets (`<base>-<agent>-traces`), one folder per run
under `traces/<run_id>/`; join them to these rows on `run_id`:

{trace_links}

## Columns

{schema_table()}

`request`, `response`, `usage` and `error` are JSON strings (not structs), so tool-call arguments of
any shape never change the schema. Parquet footer metadata of each file: `agent`, `model`,
`provider`, `upstream_url`, `run_id`, `schema_version`, `exporter_version` and `tasks` (id, turns,
calls and a preview of the first user prompt: at most 200 characters, whole words).

## Load it

```python
from datasets import load_dataset

calls = load_dataset("{repo_id}", split="train")
```

```sql
-- DuckDB
SELECT run_id, seq, task_id, turn, model, status_code, duration_ms
FROM 'hf://datasets/{repo_id}/data/*.parquet'
ORDER BY run_id, seq;
```

```python
import polars as pl

calls = pl.read_parquet("hf://datasets/{repo_id}/data/*.parquet")
```

## Decode a streamed response

A streamed call's `response` is `{{"stream": true, "raw": "<SSE text>"}}`: the stream exactly as the
agent received it. To get its events:

```python
import json

response = json.loads(row["response"])
if response.get("stream"):
    events = [
        json.loads(line.removeprefix("data:").strip())
        for line in response["raw"].splitlines()
        if line.startswith("data:") and line.strip() != "data: [DONE]"
    ]
```

A call that failed before a complete answer has an `error` (`{{"kind", "message"}}`), and its
`response` carries that error too.
"""


def traces_globs(paths: Sequence[str]) -> list[str]:
    """The loadable files of a traces dataset: STS renders first (they load and render for every
    agent), then native JSONL sessions. SQLite extracts are never offered: no loader reads them."""
    globs = {"sessions/**/*.jsonl": "sessions/", "traces/**/*.jsonl": "traces/"}
    return [
        glob
        for glob, folder in globs.items()
        if any(p.startswith(folder) and p.endswith(".jsonl") for p in paths)
    ]


def traces_card(owner: str, base: str, agent: str, paths: Sequence[str]) -> str:
    captures = f"{owner}/{captures_repo(base)}"
    repo_id = f"{owner}/{traces_repo(base, agent)}"
    globs = traces_globs(paths)
    configs = [
        {
            "config_name": "default" if number == 0 else "native",
            "data_files": [{"split": "train", "path": glob}],
        }
        for number, glob in enumerate(globs)
    ]
    fields: dict[str, object] = {"configs": configs} if configs else {}
    front = front_matter(
        pretty_name=f"{base} {agent} traces",
        tags=["agent-traces", "agentcap", "agentcap-traces", f"agentcap-traces-{agent}"],
        source_datasets=[captures],
        **fields,
    )
    sections = []
    if "sessions/**/*.jsonl" in globs:
        sections.append(
            f"`sessions/<run_id>/{agent}-<session>.jsonl`: each session converted to the Session Trace "
            "Simple Format, which the Hub's trace viewer renders (also in the `-sessions` dataset)."
        )
    if any(p.endswith(".db") for p in paths):
        sections.append(
            "`traces/<run_id>/*.db`: one SQLite extract per session, with the tables and schema of the "
            "agent's own database and only that session's rows. Open them with `sqlite3` or `agentcap "
            "rollouts`; they are left out of `configs:` because no `datasets` loader reads SQLite."
        )
    if "traces/**/*.jsonl" in globs:
        sections.append(
            "`traces/<run_id>/…/*.jsonl`: the agent's own session files, unmodified (the trace viewer "
            "renders Claude Code, Codex and Pi sessions as they are)."
        )
    layout = "\n".join(f"- {line}" for line in sections) or "- (no loadable files: download them as below)"
    loading = ""
    if globs:
        loading = f"""
`datasets` (5.2, the version agentcap tests, and later) recognises agent-trace JSONL and hands it to
[`teich`](https://pypi.org/project/teich/) to build one row per session, so loading needs it
(`pip install teich`); without it, `parse_agent_traces=False` gives one row per line:

```python
from datasets import load_dataset

sessions = load_dataset("{repo_id}", split="train")  # needs: pip install teich
lines = load_dataset("{repo_id}", split="train", parse_agent_traces=False)  # no extra package
```

```sql
-- DuckDB
SELECT * FROM read_json('hf://datasets/{repo_id}/{globs[0]}', filename = true, union_by_name = true);
```
"""
    return f"""{front}
# {base}: {agent} session traces

The native sessions of the **{agent}** agent, bundled by agentcap, one folder per run:

{layout}

The LLM calls behind these sessions are in [{captures}]({HUB}/{captures}): join on `run_id` (the
folder name here, a column there).
{loading}
```python
from huggingface_hub import snapshot_download

folder = snapshot_download("{repo_id}", repo_type="dataset")
```
"""
