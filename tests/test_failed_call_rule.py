"""One rule for a failed call (exporter.core.record.call_failed), and every command counting by it.

Before: `agentcap ls` showed errors 0 for a run with one HTTP 500 while `inspect` showed 1, and
rollouts counted a WebSocket call (status 101) as failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_record, write_run
from rollout_fixtures import read_rollouts

from exporter.core.record import call_failed
from exporter.inspect.command import inspect_command
from exporter.ls.command import ls_command


@pytest.mark.parametrize(
    ("error", "status_code", "failed"),
    [
        (False, 200, False),
        (False, 101, False),  # a WebSocket connection that closed cleanly
        (False, 302, False),
        (False, 400, True),
        (False, 500, True),
        (False, None, True),  # no response arrived
        (True, 200, True),  # a stream cut after its headers
    ],
)
def test_the_rule(error: bool, status_code: int | None, failed: bool) -> None:
    assert call_failed(error=error, status_code=status_code) is failed


@pytest.fixture
def run(tmp_path: Path) -> Path:
    reset = {"kind": "upstream_reset", "message": "cut"}
    ask = [{"role": "user", "content": "fix it"}]  # the same request again: one conversation, retried
    return write_run(
        tmp_path / "runs",
        "r1",
        [
            make_record(seq=1, messages=ask),
            make_record(seq=2, messages=ask, status_code=500),
            make_record(
                seq=3,
                messages=ask,
                status_code=0,
                error={"kind": "upstream_unreachable", "message": "refused"},
            ),
            make_record(seq=4, messages=ask, stream=True, error=reset),
            make_record(seq=5, task_id="task-2"),
        ],
    )


def test_ls_and_inspect_count_the_same_failed_calls(run: Path) -> None:
    listed = CliRunner().invoke(ls_command, [str(run.parent), "--json"], catch_exceptions=False)
    [summary] = json.loads(listed.output)
    browsed = CliRunner().invoke(inspect_command, [str(run.parent), "--json"], catch_exceptions=False)
    [entry] = [json.loads(line) for line in browsed.output.splitlines()]
    assert summary["errors"] == entry["failed"] == 3
    calls = CliRunner().invoke(inspect_command, [str(run), "--json"], catch_exceptions=False)
    assert [json.loads(line)["failed"] for line in calls.output.splitlines()] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_rollouts_count_failed_calls_by_the_same_rule(run: Path) -> None:
    rollouts = {
        row["trace_id"]: json.loads(row["source_meta"]) for row in read_rollouts(run / "captures.jsonl")
    }
    assert rollouts["captures:r1:task-1"]["failed_calls"] == 3
    assert rollouts["captures:r1:task-2"]["failed_calls"] == 0
