"""Our own captures → rollouts, and the `agentcap rollouts` command end to end (parquet, JSONL, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner
from factories import CANARY_KEY
from rollout_fixtures import (
    RUN,
    build_every_format,
    codex_lines,
    make_capture_run,
    message,
    read_rollouts,
    write_jsonl,
)

from exporter.cli import main
from exporter.rollouts.arrow_schema import ROLLOUT_SCHEMA


def test_captures_become_one_rollout_per_task(tmp_path: Path) -> None:
    run = make_capture_run(tmp_path)
    first, second = read_rollouts(run / "captures.jsonl")
    assert first["messages"] == [
        message("system", "Be brief."),
        message("user", "hi"),
        message("assistant", "hello"),
        message("user", "again"),
        message(
            "assistant",
            "second-answer",
            model="org/gpt-test-served",
            timestamp=first["messages"][-1]["timestamp"],
        ),
    ]
    assert first["messages"][-1]["timestamp"] is not None
    assert (first["trace_id"], first["agent"], first["source_kind"]) == (
        f"captures:{RUN}:task-1",
        "demo",
        "captures",
    )
    # usage summed over the calls that reported some (the unreachable call had none)
    assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (20, 6)
    meta = json.loads(first["source_meta"])
    assert (meta["calls"], meta["failed_calls"], meta["final_seq"]) == (3, 1, 2)
    assert second["trace_id"] == f"captures:{RUN}:task-2" and second["final_assistant_message"] == "ok"


def test_cli_auto_reads_every_format_into_one_parquet_with_the_fixed_schema(tmp_path: Path) -> None:
    build_every_format(tmp_path / "src")
    out = tmp_path / "rollouts.parquet"
    result = CliRunner().invoke(main, ["rollouts", str(tmp_path / "src"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.equals(ROLLOUT_SCHEMA)
    kinds = sorted(table.column("source_kind").to_pylist())
    assert kinds == [
        "captures",
        "captures",
        "claude_code",
        "codex",
        "goose",
        "goose",
        "hermes_agent",
        "hermes_agent",
        "hermes_agent",
        "opencode",
        "opencode",
        "pi_coding_agent",
    ]
    ids = table.column("trace_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert "11 unit(s) → 12 rollout(s)" in result.output  # 3 files + 7 db sessions + 1 run
    assert CANARY_KEY not in out.read_bytes().decode("latin-1")


def test_cli_jsonl_output_and_format_filter(tmp_path: Path) -> None:
    build_every_format(tmp_path / "src")
    out = tmp_path / "codex.jsonl"
    result = CliRunner().invoke(
        main, ["rollouts", str(tmp_path / "src"), "--format", "codex", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["git_branch"] == "dev" and row["started_at"] == "2026-02-03T09:20:00Z"
    assert set(row) == set(ROLLOUT_SCHEMA.names)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["rollouts", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    bad_suffix = runner.invoke(main, ["rollouts", str(tmp_path), "-o", str(tmp_path / "x.csv")])
    assert bad_suffix.exit_code == 2 and "*.parquet or *.jsonl" in bad_suffix.output
    empty = runner.invoke(main, ["rollouts", str(tmp_path)])
    assert empty.exit_code == 2 and "no auto traces found" in empty.output
    assert "Traceback" not in missing.output + bad_suffix.output + empty.output


def test_cli_reads_standard_locations_without_source(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    write_jsonl(home / ".codex" / "sessions" / "2026" / "02" / "03" / "rollout-2026-x.jsonl", codex_lines())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    result = CliRunner().invoke(main, ["rollouts", "--format", "codex"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["trace_id"].startswith("codex:")


def test_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    import os

    path = write_jsonl(tmp_path / "rollout-a.jsonl", codex_lines())
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: nothing to prove here
        return
    result = CliRunner().invoke(main, ["rollouts", str(path), "--format", "codex"])
    assert result.exit_code == 2 and f"cannot read {path}" in result.output
