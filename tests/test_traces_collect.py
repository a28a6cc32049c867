"""`agentcap traces collect`: the run's window picks the sessions; JSONL copied as-is, databases extracted."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from factories import make_record, write_run
from rollout_fixtures import (
    CLAUDE_SESSION,
    build_hermes_db,
    build_opencode_db,
    claude_basic_lines,
    codex_lines,
    read_rollouts,
    write_jsonl,
)

from exporter.cli import main

RUN = "codex-20260203T091500-a1b2c3"


def make_run(runs: Path, started: str = "2026-02-03T09:10:00Z", ended: str = "2026-02-03T09:45:00Z") -> Path:
    run = write_run(runs, RUN, [make_record(seq=1)], agent="codex")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(info | {"started_at": started, "ended_at": ended}))
    # the factory's captures are from 2025: give them a time inside the window so they don't widen it
    record = json.loads((run / "captures.jsonl").read_text()) | {"captured_at": 1770109900.0}
    (run / "captures.jsonl").write_text(json.dumps(record) + "\n")
    return run


def touch(path: Path, when: str) -> None:
    stamp = __import__("datetime").datetime.fromisoformat(when).timestamp()
    os.utime(path, (stamp, stamp))


def test_collects_only_sessions_active_in_the_window_byte_for_byte(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs")
    sessions = tmp_path / "codex-home" / "sessions"
    inside = write_jsonl(sessions / "2026/02/03/rollout-2026-02-03T09-20-00-inside.jsonl", codex_lines())
    touch(inside, "2026-02-03T09:20:02+00:00")
    outside_lines = [
        json.loads(json.dumps(line).replace("2026-02-03T09:2", "2026-02-01T07:2")) for line in codex_lines()
    ]
    outside = write_jsonl(sessions / "2026/02/01/rollout-2026-02-01T07-20-00-outside.jsonl", outside_lines)
    touch(outside, "2026-02-03T09:30:00+00:00")  # touched during the run, but its session was days before
    result = CliRunner().invoke(
        main,
        [
            "traces",
            "collect",
            RUN,
            "--agent",
            "codex",
            "--from",
            str(sessions),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    copied = sorted(
        p.relative_to(run / "traces").as_posix() for p in (run / "traces").rglob("*") if p.is_file()
    )
    assert copied == ["2026/02/03/rollout-2026-02-03T09-20-00-inside.jsonl"]
    assert (run / "traces" / copied[0]).read_bytes() == inside.read_bytes()
    assert "collected 1 codex file(s)" in result.output


def test_claude_session_is_copied_with_its_subagent_files(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs")
    projects = tmp_path / "projects"
    main_file = write_jsonl(projects / "-home-ana-proj" / f"{CLAUDE_SESSION}.jsonl", claude_basic_lines())
    sub = write_jsonl(
        projects / "-home-ana-proj" / CLAUDE_SESSION / "subagents" / "agent-a1.jsonl",
        [line | {"isSidechain": True, "agentId": "a1"} for line in claude_basic_lines()],
    )
    for path in (main_file, sub):
        touch(path, "2026-02-03T09:15:03+00:00")
    result = CliRunner().invoke(
        main, ["traces", "collect", str(run), "--agent", "claude", "--from", str(projects)]
    )
    assert result.exit_code == 0, result.output
    traces = run / "traces" / "-home-ana-proj"
    assert (traces / f"{CLAUDE_SESSION}.jsonl").read_bytes() == main_file.read_bytes()
    assert (traces / CLAUDE_SESSION / "subagents" / "agent-a1.jsonl").read_bytes() == sub.read_bytes()


def test_database_sessions_become_per_session_extracts_with_nothing_else(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", started="2026-02-03T09:19:00Z", ended="2026-02-03T09:20:02Z")
    database = build_opencode_db(tmp_path / "opencode.db")
    result = CliRunner().invoke(
        main, ["traces", "collect", str(run), "--agent", "opencode", "--from", str(database)]
    )
    assert result.exit_code == 0, result.output
    # ses_1 (09:20:00-03) overlaps the run; its subagent ses_2 (09:20:05) falls within the 30 s slack
    extracts = sorted(p.name for p in (run / "traces").iterdir())
    assert extracts == ["opencode-ses_1.db", "opencode-ses_2.db"]
    extract = sqlite3.connect(run / "traces" / "opencode-ses_1.db")
    assert extract.execute("SELECT id FROM session").fetchall() == [("ses_1",)]
    assert {row[0] for row in extract.execute("SELECT session_id FROM message")} == {"ses_1"}
    assert {row[0] for row in extract.execute("SELECT session_id FROM part")} == {"ses_1"}
    extract.close()
    [from_extract] = read_rollouts(run / "traces" / "opencode-ses_1.db")
    original = read_rollouts(database)[0]
    assert from_extract["messages"] == original["messages"]
    assert from_extract["usage"] == original["usage"]


def test_window_excludes_database_sessions_outside_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", started="2026-02-03T09:40:01Z", ended="2026-02-03T09:40:04Z")
    database = build_hermes_db(tmp_path / "state.db")
    result = CliRunner().invoke(
        main, ["traces", "collect", str(run), "--agent", "hermes", "--from", str(database)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "traces").iterdir()) == ["hermes-20260203_094000_c0ffee.db"]
    [row] = read_rollouts(run / "traces" / "hermes-20260203_094000_c0ffee.db")
    assert row["parent_session_id"] is None and row["message_count"] == 5


def test_bad_run_and_nothing_active_are_one_line_messages(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        main, ["traces", "collect", "nope", "--agent", "codex", "--runs-dir", str(tmp_path)]
    )
    assert missing.exit_code == 2 and "no such run" in missing.output
    run = make_run(tmp_path / "runs")
    empty = tmp_path / "empty-sessions"
    write_jsonl(empty / "rollout-old.jsonl", codex_lines())
    touch(empty / "rollout-old.jsonl", "2025-01-01T00:00:00+00:00")
    quiet = runner.invoke(main, ["traces", "collect", str(run), "--agent", "codex", "--from", str(empty)])
    assert quiet.exit_code == 0 and "no codex sessions were active" in quiet.output
    assert "Traceback" not in missing.output + quiet.output
