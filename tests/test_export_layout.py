"""`agentcap export` end to end through click: layout, cards, collection, traces, errors, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import CANARY_KEY, make_record, write_run

from exporter.export.command import export_command


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    wide = {"COLUMNS": "300"} | (env or {})  # one table row per line, whatever the terminal
    return CliRunner().invoke(export_command, [*args, "--no-scan"], env=wide, catch_exceptions=False)


def files_under(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    write_run(
        runs,
        "pi-20261121T081500-aaaaaa",
        [make_record(seq=1), make_record(seq=2, stream=True)],
        agent="pi",
        traces={"2026-11-21T08-15_s1.jsonl": '{"type":"session"}\n', "sub/agent-1.jsonl": b"{}\n"},
    )
    write_run(runs, "goose-20261121T091500-bbbbbb", [make_record(seq=1)], agent="goose")
    write_run(runs, "empty-20261121T101500-cccccc", [], agent="pi")
    return runs


def test_layout_matches_what_a_push_would_create(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    result = invoke("--all", "--runs-dir", str(runs), "--output", str(output), "--name", "alice/agents")
    assert result.exit_code == 0, result.output
    owner = output / "alice"
    captures = files_under(owner / "agents-captures")
    assert captures[:2] == [".agentcap/index.json", "README.md"]
    assert [name.split("-")[1] for name in captures[2:]] == ["goose", "pi"]  # data/train-<agent>-…
    assert all(name.startswith("data/train-") and name.endswith(".parquet") for name in captures[2:])
    index = json.loads((owner / "agents-captures" / ".agentcap" / "index.json").read_text())
    assert {run: entry["files"] for run, entry in index["runs"].items()} == {
        "goose-20261121T091500-bbbbbb": [captures[2]],
        "pi-20261121T081500-aaaaaa": [captures[3]],
    }
    assert files_under(owner / "agents-pi-traces") == [
        ".agentcap/index.json",
        "README.md",
        "traces/pi-20261121T081500-aaaaaa/2026-11-21T08-15_s1.jsonl",
        "traces/pi-20261121T081500-aaaaaa/sub/agent-1.jsonl",
    ]
    assert not (owner / "agents-goose-traces").exists()  # goose had no traces
    assert json.loads((owner / "collection.json").read_text()) == {
        "title": "agents",
        "owner": "alice",
        "items": [
            {"type": "dataset", "id": "alice/agents-captures"},
            {"type": "dataset", "id": "alice/agents-pi-traces"},
            {"type": "dataset", "id": "alice/agents-sessions"},
        ],
    }
    # one session (STS file) per conversation, for every run with calls
    assert files_under(owner / "agents-sessions") == [
        ".agentcap/index.json",
        "README.md",
        "sessions/goose-20261121T091500-bbbbbb/task-1.jsonl",
        "sessions/pi-20261121T081500-aaaaaa/task-1.jsonl",
        "sessions/pi-20261121T081500-aaaaaa/task-1.side-2.jsonl",  # its 2nd call starts anew
    ]
    assert "empty-20261121T101500-cccccc: no recorded calls, skipped" in result.output
    summary = next(line for line in result.output.splitlines() if "alice/agents-captures" in line)
    cells = [cell.strip() for cell in summary.split("│")]
    assert cells[2:5] == ["2", "3", "2"]  # runs, rows, files
    assert cells[6] == str(output / "alice" / "agents-captures")


def test_cards_link_the_datasets_and_document_every_column(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    invoke(str(runs), "--output", str(output))
    captures_card = (output / "local" / "agentcap-captures" / "README.md").read_text()
    front, body = captures_card.split("---\n")[1:3]
    assert "configs:" in front and "path: data/*.parquet" in front and "- agentcap-captures" in front
    assert "[local/agentcap-pi-traces](https://huggingface.co/datasets/local/agentcap-pi-traces)" in body
    for column in ("request_id", "captured_at", "served_build_info", "upstream_url", "ttfb_ms", "error"):
        assert f"| `{column}` |" in body
    assert "load_dataset(" in body and "FROM 'hf://datasets/" in body and "pl.read_parquet" in body
    traces_card = (output / "local" / "agentcap-pi-traces" / "README.md").read_text()
    assert "- agent-traces" in traces_card and "- local/agentcap-captures" in traces_card
    assert "join on `run_id`" in traces_card
    # the native JSONL is offered to loaders (and says what datasets needs to read it)
    assert "path: traces/**/*.jsonl" in traces_card and "pip install teich" in traces_card


def test_cards_are_written_once_and_outputs_accumulate(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    card = output / "local" / "agentcap-captures" / "README.md"
    invoke(str(runs / "pi-20261121T081500-aaaaaa"), "--output", str(output))
    card.write_text("# edited by hand\n")
    invoke(str(runs / "goose-20261121T091500-bbbbbb"), "--output", str(output))
    assert card.read_text() == "# edited by hand\n"
    assert len(list((card.parent / "data").glob("*.parquet"))) == 2
    collection = json.loads((output / "local" / "collection.json").read_text())
    assert [item["id"] for item in collection["items"]] == [
        "local/agentcap-pi-traces",
        "local/agentcap-captures",
        "local/agentcap-sessions",
    ]


def test_a_run_already_exported_is_skipped_like_a_push_would(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    pi_run = str(runs / "pi-20261121T081500-aaaaaa")
    invoke(pi_run, "--output", str(output))
    data = output / "local" / "agentcap-captures" / "data"
    first = sorted(data.iterdir())
    again = invoke(pi_run, "--output", str(output))
    assert again.exit_code == 0
    assert "run pi-20261121T081500-aaaaaa is already in" in again.output
    assert sorted(data.iterdir()) == first  # no duplicate rows


def test_folders_without_an_index_are_read_from_footers_and_paths(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    invoke(str(runs / "pi-20261121T081500-aaaaaa"), "--output", str(output))
    for index in output.rglob("index.json"):
        index.unlink()  # as left by an export made before the index existed
    again = invoke(str(runs), "--output", str(output))
    assert "agentcap-captures: run pi-20261121T081500-aaaaaa is already in" in again.output
    # The traces are byte-for-byte what is there already: nothing to skip or copy, so no note.
    assert "agentcap-pi-traces: run" not in again.output
    assert len(list((output / "local" / "agentcap-captures" / "data").glob("train-pi-*"))) == 1
    assert len(list((output / "local" / "agentcap-captures" / "data").glob("train-goose-*"))) == 1


def test_reexport_skips_a_run_and_replace_swaps_its_files(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    data = output / "local" / "agentcap-captures" / "data"
    args = ("pi-20261121T081500-aaaaaa", "--runs-dir", str(runs), "--output", str(output))
    names = []
    for extra in ((), (), ("--replace",)):
        result = invoke(*args, *extra)
        assert result.exit_code == 0, result.output
        names.append(sorted(path.name for path in data.iterdir()))
    assert len(names[0]) == 1 and names[1] == names[0]  # a second export adds no duplicate rows
    assert len(names[2]) == 1 and names[2] != names[0]  # --replace swaps the run's file


def test_runs_dir_from_environment_and_run_id_target(tmp_path: Path, runs: Path) -> None:
    output = tmp_path / "out"
    result = invoke(
        "goose-20261121T091500-bbbbbb", "--output", str(output), env={"AGENTCAP_RUNS_DIR": str(runs)}
    )
    assert result.exit_code == 0, result.output
    assert len(list((output / "local" / "agentcap-captures" / "data").glob("train-goose-*.parquet"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no runs given"),
        (["missing-run"], "missing-run: no such run"),
        (["--name", "just-one-part", "x"], "--name 'just-one-part': expected OWNER/NAME"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(*args, "--runs-dir", str(tmp_path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_only_empty_runs_is_an_error(tmp_path: Path, runs: Path) -> None:
    result = invoke(str(runs / "empty-20261121T101500-cccccc"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "no recorded calls in the given runs" in result.output


def test_malformed_lines_warn_or_fail_with_strict(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", "r1", [make_record(seq=1), make_record(seq=2)])
    lines = (run / "captures.jsonl").read_text().splitlines(keepends=True)
    (run / "captures.jsonl").write_text(lines[0] + '{"schema":"agentcap.capture/1","seq":"x"}\n' + lines[1])
    output = tmp_path / "out"
    result = invoke(str(run), "--output", str(output))
    assert result.exit_code == 0
    assert "captures.jsonl:2: skipping malformed record" in result.output.replace("\n", "")
    [parquet] = (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).column("seq").to_pylist() == [1, 2]
    strict = invoke(str(run), "--strict", "--output", str(tmp_path / "strict"))
    assert strict.exit_code == 2
    assert "malformed record" in strict.output and "drop --strict" in strict.output
    assert not (tmp_path / "strict").exists()


def test_unknown_schema_stops_the_export(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", "r1", [make_record(seq=1) | {"schema": "agentcap.capture/2"}])
    result = invoke(str(run), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "unknown record schema 'agentcap.capture/2'" in result.output
    assert not (tmp_path / "out").exists()


def test_credentials_never_reach_the_output(tmp_path: Path) -> None:
    record = make_record()
    # Even a header the addon failed to redact, and a credential in the URL, stay out: the
    # parquet holds bodies and tags, never headers or URLs with query strings.
    record["request"]["headers"].append(["x-custom-key", CANARY_KEY])
    record["response"]["headers"].append(["set-cookie", CANARY_KEY])
    record["url"] += f"?key={CANARY_KEY}"
    run = write_run(tmp_path / "runs", "r1", [record])
    output = tmp_path / "out"
    result = invoke(str(run), "--output", str(output))
    assert result.exit_code == 0
    written = [path.read_bytes() for path in output.rglob("*") if path.is_file()]
    assert written and not any(CANARY_KEY.encode() in content for content in written)
    assert CANARY_KEY not in result.output
