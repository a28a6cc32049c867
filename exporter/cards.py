"""Dataset cards (README.md) for the captures and traces datasets: the card a new repo starts with.

People edit cards, so after the first export agentcap only rewrites its generated sections (the
statistics, the scan, the captures card's list of traces datasets) and a few front-matter keys
(exporter/card_stats.py); what a reader needs to use the data is in the first version, and the
schema table comes from `exporter.schema`, so the card cannot drift from the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from huggingface_hub import DatasetCardData

from exporter.bundle import RepoBundle
from exporter.card_stats import RunStats, card_license, generated, refresh_card, size_category, stats_section
from exporter.schema import CAPTURES_SCHEMA, COLUMN_DESCRIPTIONS, COLUMN_NAMES, type_name

HUB = "https://huggingface.co/datasets"
TASK_CATEGORIES = ["text-generation"]  # what the Hub's task filter lists LLM conversation data under
PENDING = "(written when the dataset is published)"
# Arrow type names that `datasets` spells differently in `dataset_info.features`.
DATASETS_DTYPES = {"double": "float64", "float": "float32"}


def captures_repo(base: str) -> str:
    return f"{base}-captures"


def traces_repo(base: str, agent: str) -> str:
    return f"{base}-{agent}-traces"


def _front_matter(**fields: object) -> str:
    return "---\n" + DatasetCardData(**fields).to_yaml() + "\n---\n"


def captures_features() -> list[dict[str, str]]:
    """`dataset_info.features` for the card: `load_dataset` then reads files of every schema version
    together (older files lack the newest columns; declared columns they lack load as null)."""
    return [
        {"name": field.name, "dtype": DATASETS_DTYPES.get(str(field.type), str(field.type))}
        for field in CAPTURES_SCHEMA
    ]


def schema_table() -> str:
    rows = [f"| `{name}` | `{type_name(name)}` | {COLUMN_DESCRIPTIONS[name]} |" for name in COLUMN_NAMES]
    return "\n".join(["| column | type | meaning |", "|---|---|---|", *rows])


def captures_card(owner: str, base: str, agents: Sequence[str]) -> str:
    repo_id = f"{owner}/{captures_repo(base)}"
    traces = [f"{owner}/{traces_repo(base, agent)}" for agent in agents]
    trace_links = "\n".join(f"- [{repo}]({HUB}/{repo})" for repo in traces) or "- (none yet)"
    front = _front_matter(
        pretty_name=f"{base} captures",
        task_categories=TASK_CATEGORIES,
        tags=["agentcap", "agentcap-captures", "llm-calls", "agents", "tokens"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    return f"""{front}
# {base}: LLM calls captured with agentcap

Every LLM call a coding agent made, recorded by the [agentcap](https://github.com/huggingface/agentcap)
proxy: one row per call, with the exact request body, the response body (or the raw stream), the
task and turn it belonged to, latency, usage and errors. Each parquet file holds one run's calls to
one model at one upstream, sorted by `seq` (arrival order).

{generated("stats", PENDING)}

The agents' own session logs are in the traces datasets (`<base>-<agent>-traces`), one folder per run
under `traces/<run_id>/`; join them to these rows on `run_id`:

{generated("traces", trace_links)}

## Columns

{schema_table()}

`request`, `response`, `usage` and `error` are JSON strings (not structs), so tool-call arguments of
any shape never change the schema. The token columns are `usage` normalised the same way for every
API (`input + cache_read + cache_write + output = total`; null where the provider reported nothing). Parquet footer metadata of each file: `agent`, `model`,
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
FROM read_parquet('hf://datasets/{repo_id}/data/*.parquet', union_by_name = true)
ORDER BY run_id, seq;
```

```python
import polars as pl
from huggingface_hub import HfFileSystem

# Files of older agentcap versions lack the newest columns: a diagonal concat fills them with null.
files = ["hf://" + path for path in HfFileSystem().glob("datasets/{repo_id}/data/*.parquet")]
calls = pl.concat([pl.read_parquet(file) for file in files], how="diagonal_relaxed")
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

{generated("scan", PENDING)}
"""


def traces_card(owner: str, base: str, agent: str) -> str:
    captures = f"{owner}/{captures_repo(base)}"
    front = _front_matter(
        pretty_name=f"{base} {agent} traces",
        task_categories=TASK_CATEGORIES,
        tags=["agent-traces", "agentcap", "agentcap-traces", f"agentcap-traces-{agent}"],
        source_datasets=[captures],
    )
    return f"""{front}
# {base}: {agent} session traces

The native session files of the **{agent}** agent, bundled unmodified by
[agentcap](https://github.com/huggingface/agentcap): one folder per run under `traces/<run_id>/`
(subfolders kept).

The LLM calls behind these sessions are in [{captures}]({HUB}/{captures}): join on `run_id` (the
folder name here, a column there).

```python
from huggingface_hub import snapshot_download

folder = snapshot_download("{owner}/{traces_repo(base, agent)}", repo_type="dataset")
```

{generated("stats", PENDING)}

{generated("scan", PENDING)}
"""


def traces_links(owner: str, base: str, runs: Mapping[str, RunStats | None]) -> str:
    """The captures card's list of the traces datasets beside it: agents whose runs had traces."""
    agents = {stats.get("agent") for stats in runs.values() if stats and stats.get("traces")}
    repos = [f"{owner}/{traces_repo(base, agent)}" for agent in sorted(a for a in agents if a)]
    return "\n".join(f"- [{repo}]({HUB}/{repo})" for repo in repos) or "- (none yet)"


def current_card(
    bundle: RepoBundle,
    card: str,
    runs: Mapping[str, RunStats | None],
    *,
    owner: str,
    license_id: str | None = None,
    scan_section: str | None = None,
) -> str:
    """`card` (the repo's, or the new repo's template) with its generated parts describing `runs`,
    every run the repo holds after this export. The scan section is rewritten only by an export
    that scanned (or said --no-scan)."""
    license_id = license_id or card_license(card)
    sections = {"stats": stats_section(bundle.kind, runs, license_id=license_id)}
    if bundle.kind == "captures":
        sections["traces"] = traces_links(owner, bundle.base, runs)
    if scan_section is not None:
        sections["scan"] = scan_section
    rows = sum((stats or {}).get("rows") or 0 for stats in runs.values())
    front: dict[str, object] = {"size_categories": [size_category(rows)]}
    if license_id:
        front["license"] = license_id
    if bundle.kind == "captures":
        front["dataset_info"] = {"features": captures_features()}
    return refresh_card(card, sections, front)
