"""`agentcap export --rollouts`: a <base>-rollouts dataset next to captures and traces, in the collection."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner
from factories import make_record, write_run
from rollout_fixtures import CODEX_SESSION, codex_lines

from exporter.cli import main
from exporter.rollouts.arrow_schema import ROLLOUT_SCHEMA

RUN = "codex-20261121T081500-a1b2c3"


def test_export_rollouts_bundle_holds_traces_and_captures(tmp_path: Path) -> None:
    trace = "".join(json.dumps(line) + "\n" for line in codex_lines())
    write_run(
        tmp_path / "runs",
        RUN,
        [make_record(seq=1), make_record(seq=2, task_id="task-2")],
        agent="codex",
        traces={f"rollout-2026-02-03T09-20-00-{CODEX_SESSION}.jsonl": trace},
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(tmp_path / "runs" / RUN),
            "--rollouts",
            "--scanner",
            "kingfisher",
            "--name",
            "ana/runs",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = out / "ana" / "runs-rollouts"
    table = pq.read_table(folder / "data" / f"{RUN}.parquet")
    assert table.schema.equals(ROLLOUT_SCHEMA)
    rows = sorted(table.to_pylist(), key=lambda row: row["trace_id"])
    assert [row["trace_id"] for row in rows] == [
        f"captures:{RUN}:task-1",
        f"captures:{RUN}:task-2",
        f"codex:{CODEX_SESSION}",
    ]
    assert rows[2]["source_path"] == f"{RUN}/traces/rollout-2026-02-03T09-20-00-{CODEX_SESSION}.jsonl"
    assert str(tmp_path) not in json.dumps([row["source_path"] for row in rows])
    card = (folder / "README.md").read_text()
    assert "| `trace_id` | `string` |" in card and "path: data/*.parquet" in card
    # Its statistics: the rows, and the rollouts' usage summed (the same numbers as the rows hold).
    assert "| rollouts (rows) | 3 |" in card
    total = sum(row["usage"]["total_tokens"] or 0 for row in rows)
    assert f"| total tokens | {total:,} |" in card
    assert "**Secret scan** before publishing with kingfisher" in card and "1 clean" in card
    collection = json.loads((out / "ana" / "collection.json").read_text())
    assert "ana/runs-rollouts" in json.dumps(collection)
