"""The exported files load, together, in the tools the card tells people to use."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import make_record, write_run

from exporter.export.build.dataset_schema import COLUMN_NAMES
from exporter.export.command import export_command
from exporter.rollouts.sts import validate


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


# --- every kind of repo an export publishes, loaded as its card says -------------------------------

AGENT_TRACES = ("claude_code", "codex", "pi", "opencode", "goose", "hermes")


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run per agent, each with that agent's native traces; exported with --rollouts."""
    from rollout_fixtures import (
        build_goose_db,
        build_hermes_db,
        build_opencode_db,
        claude_basic_lines,
        codex_lines,
        pi_lines,
    )

    root = tmp_path_factory.mktemp("every-kind")
    runs = root / "runs"

    def jsonl(lines: list[dict]) -> str:
        return "".join(json.dumps(line) + "\n" for line in lines)

    native = {
        "claude_code": {
            "-home-ana-proj/7c1d0000-aaaa-4bbb-8ccc-000000000001.jsonl": jsonl(claude_basic_lines())
        },
        "codex": {"2026/02/03/rollout-2026-02-03T09-20-00-x.jsonl": jsonl(codex_lines())},
        "pi": {"--home-ana-proj--/2026_pi.jsonl": jsonl(pi_lines())},
    }
    for agent in AGENT_TRACES:
        run = write_run(
            runs,
            f"{agent}-1",
            [make_record(seq=1), make_record(seq=2)],
            agent=agent,
            traces=native.get(agent),
        )
        builder = {"opencode": build_opencode_db, "goose": build_goose_db, "hermes": build_hermes_db}.get(
            agent
        )
        if builder:
            (run / "traces").mkdir()
            builder(run / "traces" / f"{agent}.db")
    result = CliRunner().invoke(
        export_command, [str(runs), "--no-scan", "--rollouts", "--output", str(root / "out")]
    )
    assert result.exit_code == 0, result.output
    return root / "out" / "local"


def card_configs(folder: Path) -> list[dict]:
    import yaml

    return yaml.safe_load((folder / "README.md").read_text().split("---\n")[1]).get("configs") or []


@pytest.mark.parametrize(
    "repo", ["captures", "sessions", "rollouts", *(f"{agent}-traces" for agent in AGENT_TRACES)]
)
def test_every_published_repo_loads_with_datasets_and_duckdb(
    every_kind: Path, repo: str, tmp_path: Path
) -> None:
    import datasets
    import duckdb

    folder = every_kind / f"agentcap-{repo}"
    [config, *_] = card_configs(folder)
    glob = config["data_files"][0]["path"]
    assert not glob.endswith(".db")  # no loader reads SQLite: never offered
    rows = datasets.load_dataset(str(folder), config["config_name"], split="train", cache_dir=str(tmp_path))
    if glob.endswith(".parquet"):
        expected = sum(pq.read_metadata(path).num_rows for path in folder.glob(glob))
        assert len(rows) == expected > 0
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/{glob}')").fetchall() == [(expected,)]
        return
    files = sorted(folder.glob(glob))
    lines = sum(len(path.read_text().splitlines()) for path in files)
    # datasets (with teich) reads agent traces as one row per session file...
    assert len(rows) == len(files) > 0 and set(rows.column_names) >= {"session_id", "messages", "trace"}
    # ...and without teich as one row per line, which DuckDB reads too
    plain = datasets.load_dataset(
        str(folder),
        config["config_name"],
        split="train",
        cache_dir=str(tmp_path / "plain"),
        parse_agent_traces=False,
    )
    assert len(plain) == lines
    query = f"SELECT count(*) FROM read_json('{folder}/{glob}', union_by_name = true)"
    assert duckdb.sql(query).fetchall() == [(lines,)]


def test_sqlite_agents_traces_render_as_sessions_beside_their_extracts(every_kind: Path) -> None:
    for agent in ("opencode", "goose", "hermes"):
        folder = every_kind / f"agentcap-{agent}-traces"
        assert [c["data_files"][0]["path"] for c in card_configs(folder)] == ["sessions/**/*.jsonl"]
        extracts = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.db"))
        assert extracts == [f"traces/{agent}-1/{agent}.db"]
        card = (folder / "README.md").read_text()
        assert "no `datasets` loader reads SQLite" in card and "pip install teich" in card
        # the same converted sessions are in the sessions dataset, valid STS
        converted = sorted((folder / "sessions").rglob("*.jsonl"))
        assert converted
        for path in converted:
            twin = every_kind / "agentcap-sessions" / path.relative_to(folder)
            assert twin.read_bytes() == path.read_bytes()
            assert validate(path.read_text()) == []
            assert json.loads(path.read_text().splitlines()[0])["harness"] == agent
