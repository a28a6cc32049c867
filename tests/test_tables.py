"""One rule for every table (exporter/shared/tables.py): whole cells in pipes, ids never wrapped on a terminal."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run
from rich.console import Console
from scan_fakes import canary_secrets

from exporter.cli import main
from exporter.shared.tables import new_table

# Longer than a narrow terminal: rich used to wrap or cut it to fit $COLUMNS (or 80) even in a pipe.
LONG_RUN_ID = "claude-code-20261121T081500-a1b2c3-refactor-the-billing-service-and-its-tests"
NARROW = {"COLUMNS": "40"}
PROMPT = "refactor the billing service and its tests, then run the whole suite and fix what fails"
KINGFISHER = Path(sys.executable).parent / "kingfisher"


def agentcap(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=NARROW)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    secret = canary_secrets()["github"]
    records = [
        make_record(
            seq=1, model="org/a-model-with-a-long-name", messages=[{"role": "user", "content": PROMPT}]
        ),
        make_record(seq=2, messages=[{"role": "user", "content": f"GITHUB_TOKEN={secret} ok?"}]),
    ]
    write_run(tmp_path / "runs", LONG_RUN_ID, records)
    return tmp_path / "runs"


def rows_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_ls_prints_whole_run_ids_in_a_pipe(runs: Path) -> None:
    result = agentcap("ls", str(runs), "-l")
    assert result.exit_code == 0, result.output
    (row,) = rows_with(result.output, LONG_RUN_ID)
    assert row.split()[:4] == [LONG_RUN_ID, "demo", "org/a-model-with-a-long-name,", "org/gpt-test"]
    assert len(result.output.splitlines()) == 2  # header + one row: nothing wrapped
    assert "\x1b[" not in result.output  # plain: no colour codes in a pipe


@pytest.mark.parametrize("target", ["runs dir", "run"])
def test_inspect_print_prints_whole_cells_in_a_pipe(runs: Path, target: str) -> None:
    path = runs if target == "runs dir" else runs / LONG_RUN_ID
    result = agentcap("inspect", str(path), "--print")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if target == "runs dir":
        assert len(lines) == 2  # header + the run: nothing wrapped
        assert lines[1].split()[:2] == [LONG_RUN_ID, "demo"]
    else:
        assert len(lines) == 3  # header + two calls
        assert lines[1].endswith(f"user: {PROMPT}")


def test_export_summary_prints_whole_paths_in_a_pipe(runs: Path, tmp_path: Path) -> None:
    output = tmp_path / "a-rather-long-output-folder-name" / "for-the-exported-datasets"
    result = agentcap("export", "--all", "--runs-dir", str(runs), "--output", str(output), "--no-scan")
    assert result.exit_code == 0, result.output
    (row,) = rows_with(result.output, "local/agentcap-captures")
    assert row.split("│")[-2].strip() == str(output / "local" / "agentcap-captures")


@pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")
def test_scan_tables_print_whole_run_ids_in_a_pipe(runs: Path) -> None:
    result = agentcap("scan", "--all", "--runs-dir", str(runs), "--scanner", "kingfisher", "--no-verify")
    assert result.exit_code == 1, result.output  # the canary blocks
    assert rows_with(result.output, f"secrets in run {LONG_RUN_ID}")
    (row,) = rows_with(result.output, f"│ {LONG_RUN_ID} ")
    assert row.split("│")[-2].strip() == "scan"
    assert rows_with(result.output, "captures.jsonl:2")


def test_on_a_narrow_terminal_ids_stay_whole_and_text_wraps() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=60, color_system=None)
    table = new_table([("run id", "id"), ("models", "text"), ("calls", "number")])
    run_id = LONG_RUN_ID[:34]
    table.add_row(run_id, "org/alpha, org/beta, org/gamma, org/delta", "12")
    console.print(table)
    lines = console.file.getvalue().splitlines()
    assert sum(run_id in line for line in lines) == 1
    assert max(len(line) for line in lines) <= 60  # the text column wrapped to fit instead
