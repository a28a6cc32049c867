"""The exported files load, together, in the tools the card tells people to use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_record, write_run

from exporter.export.build.dataset_schema import COLUMN_NAMES
from exporter.export.command import export_command


@pytest.fixture(scope="module")
def data_glob(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("loaders")
    runs = root / "runs"
    # Two runs, two agents; the second has only failed calls, so its files are mostly nulls:
    # the pinned schema must still line up with the first's.
    write_run(runs, "pi-1", [make_record(seq=1), make_record(seq=2, stream=True, turn=2)], agent="pi")
    unreachable = {"kind": "upstream_unreachable", "message": "refused"}
    write_run(
        runs, "goose-1", [make_record(seq=1, status_code=0, error=unreachable, task_id=None, turn=None)]
    )
    result = CliRunner().invoke(export_command, [str(runs), "--no-scan", "--output", str(root / "out")])
    assert result.exit_code == 0, result.output
    return str(root / "out" / "local" / "agentcap-captures" / "data" / "*.parquet")


def test_datasets_load_dataset(data_glob: str, tmp_path: Path) -> None:
    import datasets

    rows = datasets.load_dataset("parquet", data_files=data_glob, split="train", cache_dir=str(tmp_path))
    assert rows.column_names == list(COLUMN_NAMES)
    assert sorted(zip(rows["run_id"], rows["seq"], strict=True)) == [("goose-1", 1), ("pi-1", 1), ("pi-1", 2)]
    streamed = next(row for row in rows if row["stream"])
    assert json.loads(streamed["response"])["raw"].endswith("data: [DONE]\n\n")


def test_duckdb(data_glob: str) -> None:
    import duckdb

    rows = duckdb.sql(
        f"SELECT run_id, seq, status_code, json_extract_string(error, '$.kind') AS kind "
        f"FROM read_parquet('{data_glob}') ORDER BY run_id, seq"
    ).fetchall()
    assert rows == [
        ("goose-1", 1, None, "upstream_unreachable"),
        ("pi-1", 1, 200, None),
        ("pi-1", 2, 200, None),
    ]


def test_polars(data_glob: str) -> None:
    import polars as pl

    frame = pl.read_parquet(data_glob).sort("run_id", "seq")
    assert frame.columns == list(COLUMN_NAMES)
    assert frame["captured_at"].dtype == pl.Datetime("us", "UTC")
    assert frame["turn"].to_list() == [None, 1, 2]
