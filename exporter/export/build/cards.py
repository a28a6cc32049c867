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


def traces_card(owner: str, base: str, agent: str) -> str:
    captures = f"{owner}/{captures_repo(base)}"
    front = front_matter(
        pretty_name=f"{base} {agent} traces",
        tags=["agent-traces", "agentcap", "agentcap-traces", f"agentcap-traces-{agent}"],
        source_datasets=[captures],
    )
    return f"""{front}
# {base}: {agent} session traces

The native session files of the **{agent}** agent, bundled unmodified by
agentcap: one folder per run under `traces/<run_id>/`
(subfolders kept).

The LLM calls behind these sessions are in [{captures}]({HUB}/{captures}): join on `run_id` (the
folder name here, a column there).

```python
from huggingface_hub import snapshot_download

folder = snapshot_download("{owner}/{traces_repo(base, agent)}", repo_type="dataset")
```
"""
