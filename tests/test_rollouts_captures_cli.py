"""Our own captures → rollouts, and the `agentcap rollouts` command end to end (parquet, JSONL, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner
from factories import CANARY_KEY, make_record, write_run
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


def test_captures_become_one_rollout_per_conversation(tmp_path: Path) -> None:
    run = make_capture_run(tmp_path)
    first, second = read_rollouts(run / "captures.jsonl")
    stamps = [m["timestamp"] for m in first["messages"]]
    assert first["messages"] == [
        message("system", "Be brief.", timestamp=stamps[0]),
        message("user", "hi", timestamp=stamps[1]),
        message("assistant", "hello", model="org/gpt-test-served", timestamp=stamps[2]),
        message("user", "again", timestamp=stamps[3]),
        message("assistant", "second-answer", model="org/gpt-test-served", timestamp=stamps[4]),
        message("user", "more", timestamp=stamps[5]),
        # the failed call stays visible, flagged
        message(
            "assistant",
            "[call failed: upstream_unreachable: x]",
            model="org/gpt-test",
            is_error=True,
            timestamp=stamps[6],
        ),
    ]
    assert None not in stamps and stamps == sorted(stamps)
    assert (first["trace_id"], first["agent"], first["source_kind"], first["is_sidechain"]) == (
        f"captures:{RUN}:task-1",
        "demo",
        "captures",
        False,
    )
    # usage summed over the calls that reported some (the unreachable call had none)
    assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (20, 6)
    meta = json.loads(first["source_meta"])
    assert (meta["calls"], meta["failed_calls"], meta["final_seq"], meta["turns"]) == (3, 1, 2, [1])
    assert len(meta["request_ids"]) == 3
    assert second["trace_id"] == f"captures:{RUN}:task-2" and second["final_assistant_message"] == "ok"


def tool_loop_run(runs: Path, turns: int = 40) -> Path:
    """`turns` user turns, each a tool call and a text answer (2 calls), then one small title call
    to another model: what Claude Code and opencode do."""
    history: list[dict] = [{"role": "system", "content": "You are a coding agent."}]
    records = []
    for number in range(1, turns + 1):
        history.append({"role": "user", "content": f"step {number}: read file {number}"})
        call_id = f"call_{number}"
        tool_call = {
            "id": call_id,
            "type": "function",
            "function": {"name": "read", "arguments": json.dumps({"path": f"f{number}.py"})},
        }
        body = {"model": "org/big", "messages": list(history), "tools": [{"type": "function"}]}
        records.append(make_record(seq=len(records) + 1, messages=list(history), model="org/big"))
        records[-1]["request"]["body"] = body
        records[-1]["response"]["body"]["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call],
        }
        history += [
            {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": call_id, "content": f"contents of f{number}.py"},
        ]
        records.append(
            make_record(seq=len(records) + 1, messages=list(history), model="org/big", reply=f"done {number}")
        )
        records[-1]["request"]["body"]["tools"] = [{"type": "function"}]
        history.append({"role": "assistant", "content": f"done {number}"})
    title = [{"role": "user", "content": "Write a 5-word title for: step 1: read file 1"}]
    records.append(make_record(seq=len(records) + 1, messages=title, model="org/tiny", reply="Reading files"))
    return write_run(runs, RUN, records)


def test_tool_loop_and_title_call_give_the_whole_conversation(tmp_path: Path) -> None:
    """Reported: 80 calls + 1 title call gave a rollout of 3 messages with the title model as its model."""
    run = tool_loop_run(tmp_path)
    main, title = read_rollouts(run / "captures.jsonl")
    assert main["message_count"] == 161
    assert (main["model"], main["is_sidechain"], main["tool_call_count"]) == ("org/big-served", False, 40)
    assert main["messages"][-1]["content"] == "done 40"
    assert json.loads(main["source_meta"])["calls"] == 80
    assert main["usage"]["input_tokens"] == 800
    assert (title["model"], title["is_sidechain"], title["message_count"]) == ("org/tiny-served", True, 2)
    assert title["parent_session_id"] == main["session_id"] == f"{RUN}:task-1"


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
