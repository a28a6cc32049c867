"""`agentcap inspect`: target resolution, --print / --json, request-id lookup, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import conversation_run, export_parquet, make_record, write_run
from fake_hub import FakeHub

from exporter.cli import main

RUN_ID = "demo-20251121T081500-a1b2c3"
AGENTCAP = Path(sys.executable).parent / "agentcap"


def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["inspect", *args], env=env, catch_exceptions=False)


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, list[dict]]:
    run_dir, records = conversation_run(tmp_path / "runs")
    return run_dir.parent, records


def test_print_runs_dir_from_env(runs: tuple[Path, list[dict]]) -> None:
    runs_dir, _ = runs
    result = run_cli("--print", env={"AGENTCAP_RUNS_DIR": str(runs_dir)})
    assert result.exit_code == 0
    header, row = result.output.splitlines()[:2]
    assert header.split() == ["RUN", "AGENT", "MODELS", "TASKS", "CALLS", "ERRORS"]
    assert row.split() == [RUN_ID, "demo", "org/gpt-test", "2", "6", "2"]


@pytest.mark.parametrize("how", ["run id", "run dir", "parquet"])
def test_json_calls(runs: tuple[Path, list[dict]], tmp_path: Path, how: str) -> None:
    runs_dir, records = runs
    target = {
        "run id": RUN_ID,
        "run dir": str(runs_dir / RUN_ID),
        "parquet": str(export_parquet(runs_dir / RUN_ID, tmp_path / "out")[0]) if how == "parquet" else "",
    }[how]
    result = run_cli(target, "--json", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    calls = [json.loads(line) for line in result.output.splitlines()]
    assert [c["request_id"] for c in calls] == [r["request_id"] for r in records]
    assert [c["delta"] for c in calls] == ["init 1", "+2", "+2", "-4 +1", "init 1", "+0"]
    assert [c["failed"] for c in calls] == [False] * 4 + [True, True]
    assert calls[2]["summary"] == "user: now add a changelog"


def test_request_id_prefix_prints_the_request(runs: tuple[Path, list[dict]]) -> None:
    runs_dir, records = runs
    wanted = records[2]
    result = run_cli(wanted["request_id"][:10], "--runs-dir", str(runs_dir))
    assert result.exit_code == 0
    assert json.loads(result.output) == wanted["request"]["body"]
    result = run_cli(wanted["request_id"], "--json", "--runs-dir", str(runs_dir))
    assert json.loads(result.output)["request_id"] == wanted["request_id"]


def test_ambiguous_and_unknown_request_ids_are_one_line_errors(tmp_path: Path) -> None:
    ids = ["abcdef01" + "0" * 24, "abcdef02" + "0" * 24, "abcdef03" + "0" * 24]
    write_run(tmp_path / "runs", RUN_ID, [make_record(seq=n, request_id=rid) for n, rid in enumerate(ids, 1)])
    result = run_cli("abcdef0", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "matches 3 calls" in result.output and all(rid in result.output for rid in ids)
    result = run_cli("fedcba9", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "no call with that request id" in result.output


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nothing-like-this", "not a run, file, dataset or request id"),
        ("missing.parquet", "no such parquet file"),
        (
            "hf://datasets/bad",
            "expected OWNER/NAME, hf://datasets/OWNER/NAME or https://huggingface.co/datasets/OWNER/NAME",
        ),
    ],
)
def test_bad_targets(tmp_path: Path, target: str, message: str) -> None:
    result = run_cli(target, "--runs-dir", str(tmp_path))
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1


def test_missing_runs_dir(tmp_path: Path) -> None:
    result = run_cli("--print", "--runs-dir", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no runs dir" in result.output


def test_hub_dataset_print_and_json(runs: tuple[Path, list[dict]], tmp_path: Path) -> None:
    runs_dir, _ = runs
    (path,) = export_parquet(runs_dir / RUN_ID, tmp_path / "out")
    with FakeHub() as hub:
        hub.create_repo("tester/caps-captures")
        hub.put_file("tester/caps-captures", f"data/{path.name}", path.read_bytes())
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_CACHE": str(tmp_path / "cache")}
        # The same dataset named the ways `export --name` / `--push` accept (core.names).
        targets = (
            "hf://datasets/tester/caps-captures",
            "tester/caps-captures",
            "https://huggingface.co/datasets/tester/caps-captures",
            f"{hub.url}/datasets/tester/caps-captures",  # a URL of the configured HF_ENDPOINT
        )
        for target in targets:
            result = run_cli(target, "--json", env=env)
            assert result.exit_code == 0, result.output
            (file,) = [json.loads(line) for line in result.output.splitlines()]
            assert (file["path"], file["rows"], file["agent"], file["model"]) == (
                f"data/{path.name}",
                6,
                "demo",
                "org/gpt-test",
            )
            assert [task["id"] for task in file["tasks"]] == ["task-1", "task-2"]
        result = run_cli("tester/nothing-here", "--print", env=env)
        assert result.exit_code == 2 and "no such dataset" in result.output
    assert not list((tmp_path / "cache").rglob("*.parquet"))  # listing never downloads


# ---------------------------------------------------------------- user mistakes, as a user sees them


def agentcap_process(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what reaches the terminal, tracebacks included."""
    return subprocess.run(
        [str(AGENTCAP), *args],
        cwd=cwd,
        env=os.environ | {"HF_HUB_DISABLE_TELEMETRY": "1"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("target", ["runs/nope-typo", "./nope-typo", "runs/nope/deeper"])
def test_a_mistyped_path_is_no_such_run_and_never_asks_the_hub(
    runs: tuple[Path, list[dict]], target: str, refused_endpoint: str
) -> None:
    runs_dir, _ = runs
    result = agentcap_process(
        "inspect", target, "--print", cwd=runs_dir.parent, env={"HF_ENDPOINT": refused_endpoint}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {target}: no such run or file; pass ")


@pytest.mark.parametrize("target", ["hf://datasets/tester/caps-captures", "tester/caps-captures"])
@pytest.mark.parametrize("mode", ["--print", "--json"])
def test_an_unreachable_hub_is_one_line_at_once(
    tmp_path: Path, target: str, mode: str, refused_endpoint: str
) -> None:
    result = agentcap_process("inspect", target, mode, cwd=tmp_path, env={"HF_ENDPOINT": refused_endpoint})
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"Error: hf://datasets/tester/caps-captures: could not reach {refused_endpoint} "
        "(ConnectError: [Errno 111] Connection refused); check the network or HF_ENDPOINT"
    ]


def test_a_hub_server_error_is_one_line(tmp_path: Path) -> None:
    with FakeHub() as hub:
        hub.create_repo("tester/caps-captures")
        hub.fail_next("repo_info", 503)
        result = agentcap_process(
            "inspect",
            "hf://datasets/tester/caps-captures",
            "--print",
            cwd=tmp_path,
            env={"HF_ENDPOINT": hub.url},
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: hf://datasets/tester/caps-captures: the Hub answered HTTP 503")
    assert line.endswith("; try again later")
