"""`agentcap ls`: one row per run, -l, --json, and the empty cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run

from exporter.ls.command import ls_command


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        ls_command, list(args), env={"COLUMNS": "300"} | (env or {}), catch_exceptions=False
    )


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    unreachable = {"kind": "upstream_unreachable", "message": "refused"}
    write_run(
        runs,
        "pi-20261121T081500-aaaaaa",
        [
            make_record(seq=1, task_id="t1", model="org/alpha"),
            make_record(seq=2, task_id="t2", model="org/beta", upstream_url="https://api.openai.com"),
            make_record(seq=3, task_id="t2", status_code=0, error=unreachable),
        ],
        agent="pi",
    )
    write_run(runs, "goose-20261121T091500-bbbbbb", [make_record(seq=1)], agent="goose")
    return runs


def test_table_has_one_row_per_run(runs: Path) -> None:
    result = invoke(str(runs))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "run",
        "id",
        "agent",
        "models",
        "calls",
        "errors",
        "tasks",
        "started",
        "(UTC)",
        "size",
    ]
    pi = next(line for line in lines if line.startswith("pi-"))
    assert pi.split()[:9] == [
        "pi-20261121T081500-aaaaaa", "pi", "org/alpha,", "org/beta,", "org/gpt-test", "3", "1", "2", "2025-11-21",
    ]  # fmt: skip
    assert "08:15:00" in pi
    assert "upstreams" not in result.output


def test_long_adds_upstreams_and_providers(runs: Path) -> None:
    result = invoke(str(runs), "-l")
    pi = next(line for line in result.output.splitlines() if line.startswith("pi-"))
    assert "http://127.0.0.1:9000, https://api.openai.com" in pi
    assert pi.rstrip().endswith("local, openai")


def test_json_has_every_field(runs: Path) -> None:
    result = invoke(str(runs), "--json")
    summaries = {entry["run_id"]: entry for entry in json.loads(result.output)}
    pi = summaries["pi-20261121T081500-aaaaaa"]
    assert (pi["agent"], pi["calls"], pi["errors"], pi["tasks"], pi["status"]) == ("pi", 3, 1, 2, "complete")
    assert pi["models"] == ["org/alpha", "org/beta", "org/gpt-test"]
    assert pi["providers"] == ["local", "openai"]
    assert pi["started"] == "2025-11-21T08:15:00Z"
    assert pi["size_bytes"] == sum(p.stat().st_size for p in (runs / "pi-20261121T081500-aaaaaa").iterdir())


def test_runs_dir_from_environment(runs: Path) -> None:
    result = invoke(env={"AGENTCAP_RUNS_DIR": str(runs)})
    assert "goose-20261121T091500-bbbbbb" in result.output


@pytest.mark.parametrize("how", ["argument", "--json", "environment", "default"])
def test_a_missing_runs_dir_is_a_one_line_error(tmp_path: Path, how: str, monkeypatch) -> None:
    missing = tmp_path / "nope"
    monkeypatch.chdir(tmp_path)  # the default is ./runs, missing here too
    args, env = {
        "argument": ([str(missing)], {}),
        "--json": ([str(missing), "--json"], {}),
        "environment": ([], {"AGENTCAP_RUNS_DIR": str(missing)}),
        "default": ([], {}),
    }[how]
    result = CliRunner().invoke(ls_command, args, env=env)
    assert result.exit_code == 2
    named = "runs" if how == "default" else str(missing)
    assert result.output.splitlines() == [
        f"Error: {named}: no such directory; record a run with `mitmdump -s addons/agentcap.py`, "
        f"or name the runs dir (agentcap ls DIR, or $AGENTCAP_RUNS_DIR)"
    ]
    assert "Traceback" not in result.output


def test_an_empty_dir_is_one_line_exit_0(tmp_path: Path) -> None:
    empty = invoke(str(tmp_path))
    assert empty.exit_code == 0 and empty.output == f"no runs in {tmp_path}\n"
    assert invoke(str(tmp_path), "--json").output == "[]\n"


def test_unreadable_run_is_listed_with_its_problem(tmp_path: Path) -> None:
    write_run(tmp_path, "future-run", [make_record() | {"schema": "agentcap.capture/7"}])
    result = invoke(str(tmp_path))
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if line.startswith("future-run "))
    assert row.split()[2] == "-" and row.split()[3] == "?"
    assert "unknown record schema 'agentcap.capture/7'" in result.output
