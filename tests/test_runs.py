"""Finding runs (targets, --all, run ids) and reading their records (malformed, cut, unknown schema)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import make_record, write_run

from exporter.core.errors import UserError
from exporter.core.record import CaptureRecord
from exporter.shared.runs import RunDir, iter_records, list_runs, resolve_targets


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    write_run(runs, "demo-20261121T081500-aaaaaa", [make_record(seq=1)], agent="demo")
    write_run(runs, "pi-20261121T091500-bbbbbb", [make_record(seq=1), make_record(seq=2)], agent="pi")
    return runs


def ids(runs: list[RunDir]) -> list[str]:
    return [run.run_id for run in runs]


def test_list_runs_sorted_with_agent_and_info(runs_dir: Path) -> None:
    runs = list_runs(runs_dir)
    assert ids(runs) == ["demo-20261121T081500-aaaaaa", "pi-20261121T091500-bbbbbb"]
    assert [run.agent for run in runs] == ["demo", "pi"]
    assert runs[1].info.counts.recorded == 2
    assert list_runs(runs_dir / "missing") == []


def test_agent_falls_back_to_records_then_unknown(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r1", [make_record()], agent="goose")
    (run / "run.json").unlink()
    assert RunDir.load(run).agent == "goose"
    assert RunDir.load(run).run_id == "r1"
    (run / "captures.jsonl").write_text("")
    (run / "run.json").write_text("{}")
    assert RunDir.load(run).agent == "unknown"


def test_resolve_dir_of_runs_run_dir_and_run_id(runs_dir: Path, tmp_path: Path) -> None:
    both = ["demo-20261121T081500-aaaaaa", "pi-20261121T091500-bbbbbb"]
    assert ids(resolve_targets([str(runs_dir)], all_runs=False, runs_dir=tmp_path / "elsewhere")) == both
    one = str(runs_dir / "pi-20261121T091500-bbbbbb")
    assert ids(resolve_targets([one], all_runs=False, runs_dir=tmp_path)) == ["pi-20261121T091500-bbbbbb"]
    by_id = resolve_targets(["demo-20261121T081500-aaaaaa"], all_runs=False, runs_dir=runs_dir)
    assert ids(by_id) == ["demo-20261121T081500-aaaaaa"]
    # --all plus a target: every run once.
    assert ids(resolve_targets([one], all_runs=True, runs_dir=runs_dir)) == both


@pytest.mark.parametrize(
    ("targets", "all_runs", "expected"),
    [
        ([], False, "no runs given"),
        (["nope"], False, "nope: no such run"),
        ([], True, "--all: no runs in"),
    ],
)
def test_resolve_errors_name_the_accepted_forms(
    tmp_path: Path, targets: list[str], all_runs: bool, expected: str
) -> None:
    with pytest.raises(UserError) as caught:
        resolve_targets(targets, all_runs=all_runs, runs_dir=tmp_path / "empty")
    assert expected in caught.value.message
    if targets or not all_runs:
        assert "a run id under the runs dir" in caught.value.message


def test_directory_without_runs_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no runs"):
        resolve_targets([str(tmp_path / "empty")], all_runs=False, runs_dir=tmp_path)


def append(run: Path, text: str) -> None:
    with (run / "captures.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_iter_records_skips_malformed_with_file_and_line(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r1", [make_record(seq=1)])
    append(run, "{not json\n")
    append(run, json.dumps(make_record(seq=2)) + "\n\n")
    warnings: list[str] = []
    records = [record for _, record in iter_records(RunDir.load(run), CaptureRecord, warn=warnings.append)]
    assert [record.seq for record in records] == [1, 2]
    assert len(warnings) == 1
    assert f"{run / 'captures.jsonl'}:2" in warnings[0]
    assert "skipping malformed" in warnings[0]


def test_strict_makes_malformed_fatal(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r1", [make_record(seq=1)])
    append(run, "[1, 2]\n")
    with pytest.raises(UserError, match=r"captures.jsonl:2: malformed record"):
        list(iter_records(RunDir.load(run), CaptureRecord, strict=True))


def test_cut_last_line_is_tolerated_even_strict(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r1", [make_record(seq=1), make_record(seq=2)])
    append(run, json.dumps(make_record(seq=3))[:57])  # a killed proxy: no newline, cut mid-record
    warnings: list[str] = []
    records = [
        record
        for _, record in iter_records(RunDir.load(run), CaptureRecord, strict=True, warn=warnings.append)
    ]
    assert [record.seq for record in records] == [1, 2]
    assert warnings == [
        f"{run / 'captures.jsonl'}:3: ignoring the cut last line (the proxy was stopped mid-write)"
    ]


def test_unknown_schema_is_a_clear_error(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r1", [make_record(seq=1) | {"schema": "agentcap.capture/9"}])
    with pytest.raises(UserError, match=r"unknown record schema 'agentcap.capture/9'.*upgrade agentcap"):
        list(iter_records(RunDir.load(run), CaptureRecord))
