"""README command 1: scripts/demo.sh runs the whole job end to end and leaves nothing running."""

import os
import subprocess
from pathlib import Path

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        env=os.environ | {"AGENTCAP_DEMO_DIR": str(out), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo done" in result.stdout
    [parquet] = (out / "export" / "local" / "agentcap-captures" / "data").glob("train-demo-*.parquet")
    table = pq.read_table(parquet)
    assert table.num_rows == 8  # 2 tasks x 2 turns x (tool call + answer)
    assert sorted(set(table.column("task_id").to_pylist())) == ["task-readme", "task-tests"]
    assert set(table.column("stream").to_pylist()) == {True, False}
    leftovers = [
        process.info["cmdline"]
        for process in psutil.process_iter(["cmdline"])
        if str(out) in " ".join(process.info["cmdline"] or [])
    ]
    assert leftovers == []
