"""The picker driven by Textual's headless pilot on a runs dir, a parquet file and a fake-Hub dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import CANARY_KEY, conversation_run, export_parquet
from fake_hub import FakeHub
from huggingface_hub import HfApi
from rich.text import Text
from textual import events
from textual.widgets import DataTable, Input, Static

from exporter.inspect.app import MATCH_STYLE, InspectApp
from exporter.inspect.hub_source import HubSource
from exporter.inspect.sources import ParquetSource, RunsDirSource, RunSource
from exporter.scan.report import REPORT_FILE as SCAN_REPORT_FILE
from exporter.shared.runs import RunDir

SIZE = (160, 48)
RUN_ID = "demo-20251121T081500-a1b2c3"
CALL_DELTAS = ["init 1", "+2", "+2", "-4 +1", "init 1", "+0"]


def rendered_rows(app: InspectApp) -> list[tuple[str, ...]]:
    """The rows the DataTable shows, as plain strings."""
    table = app.query_one(DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(index)) for index in range(table.row_count)]


def preview(app: InspectApp) -> Text:
    content = app.query_one("#preview", Static).content
    assert isinstance(content, Text)
    return content


def highlighted(text: Text) -> list[str]:
    return [text.plain[span.start : span.end] for span in text.spans if str(span.style) == MATCH_STYLE]


async def settle(app: InspectApp, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    run_dir, _ = conversation_run(runs)
    report = {
        "schema": "agentcap.scan-report/1",
        "runs": [
            {
                "run_id": RUN_ID,
                "findings": [
                    {
                        "scanner": "kingfisher",
                        "detector": "github-pat",
                        "file": "captures.jsonl",
                        "line": 3,
                        "status": "verified",
                        "sha256": "0" * 64,
                        "preview": "ghp_…abcd",
                    }
                ],
            }
        ],
    }
    (runs / SCAN_REPORT_FILE).write_text(json.dumps(report))
    # a header value that is not redacted must still never be shown: inspect lists names only
    lines = (run_dir / "captures.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["request"]["headers"].append(["x-custom", CANARY_KEY])
    (run_dir / "captures.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    return runs


async def test_runs_dir_every_level_and_key(runs_dir: Path) -> None:
    app = InspectApp(RunsDirSource(runs_dir))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert rendered_rows(app) == [(RUN_ID, "demo", "org/gpt-test", "2", "6", "2")]
        text = preview(app).plain
        assert "Fix the failing tests in Straße.py" in text and "deploy it" in text
        assert "github-pat" in text and "ghp_…abcd" in text

        await pilot.press("enter")
        await settle(app, pilot)
        rows = rendered_rows(app)
        assert [row[0] for row in rows] == [
            "task-1.1",
            "task-1.2",
            "task-1.3",
            "task-1.4",
            "task-2.1",
            "task-2.2",
        ]
        assert [row[3] for row in rows] == CALL_DELTAS
        assert [row[2] for row in rows] == ["200", "200", "200", "200", "500", "upstream_reset"]
        assert rows[2][4] == "user: now add a changelog"
        text = preview(app).plain
        assert "authorization" in text and CANARY_KEY not in text and "x-custom" not in text

        await pilot.press("down", "down")  # task-1.3: the call the scan finding points at (line 3)
        text = preview(app).plain
        assert "scan findings (1)" in text and "new messages (2 of 5)" in text
        assert "[3] assistant: Fixed." in text and "Changelog added." in text

        await pilot.press(*"'日本")  # into tool output: only calls that sent it as a new message
        await pilot.pause()
        assert [row[0] for row in rendered_rows(app)] == ["task-1.2"]
        assert highlighted(preview(app)) == ["日本"]  # in the new tool message
        await pilot.press("ctrl+u", *"straße")  # smart case, fuzzy, non-ASCII
        await pilot.pause()
        assert [row[0] for row in rendered_rows(app)] == ["task-1.1"]
        assert highlighted(preview(app)) == ["Straße"] * 2  # prompt + new message; whole word, not t(s)(t)s…

        await pilot.press("ctrl+u", "ctrl+f")  # failed only
        await pilot.pause()
        assert [row[0] for row in rendered_rows(app)] == ["task-2.1", "task-2.2"]
        assert "failed only" in str(app.query_one("#status", Static).content)
        await pilot.press("down")
        assert "upstream_reset: peer closed" in preview(app).plain
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert len(rendered_rows(app)) == 6

        await pilot.press("home")  # the filter keeps focus: home goes to the input, not the list
        app.query_one(DataTable).move_cursor(row=1)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.level.kind == "messages"
        assert rendered_rows(app) == [
            ("0", "user", "Fix the failing tests in Straße.py"),
            ("1", "assistant→read_file", '{"path":"README.md"}'),
            ("2", "tool", "# README see 日本 docs"),
            ("", "response", "Fixed. [stop]"),
        ]
        await pilot.press("down")
        assert '"path": "README.md"' in preview(app).plain  # pretty-printed arguments

        await pilot.press(*"'readme")
        await pilot.pause()
        assert [row[1] for row in rendered_rows(app)] == ["assistant→read_file", "tool"]
        assert highlighted(preview(app)) == ["README"]

        await pilot.press("escape")
        await pilot.pause()
        assert app.level.kind == "calls" and app.query_one(Input).value == ""
        assert app.level.highlighted is not None and app.level.highlighted.cells[0] == "task-1.2"
        await pilot.press("escape")
        await pilot.pause()
        assert app.level.kind == "runs"
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_value is None and app.failure is None


async def test_malformed_stream_shows_marker_not_crash(tmp_path: Path) -> None:
    run_dir, _ = conversation_run(tmp_path / "runs")
    lines = (run_dir / "captures.jsonl").read_text().splitlines()
    second = json.loads(lines[1])
    second["response"]["raw"] = second["response"]["raw"][:150]  # cut mid-event
    (run_dir / "captures.jsonl").write_text("\n".join([lines[0], json.dumps(second), *lines[2:]]) + "\n")
    app = InspectApp(RunSource(RunDir.load(run_dir)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "enter")
        await pilot.pause()
        response = rendered_rows(app)[-1]
        assert response[1] == "response" and response[2].endswith("⚠")
        await pilot.press("end")
        app.query_one(DataTable).move_cursor(row=len(rendered_rows(app)) - 1)
        await pilot.pause()
        assert "stream ended without data: [DONE] (cut off?)" in preview(app).plain


async def test_parquet_calls_and_messages(tmp_path: Path) -> None:
    run_dir, records = conversation_run(tmp_path / "runs")
    (path,) = export_parquet(run_dir, tmp_path / "out")
    app = InspectApp(ParquetSource(path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        rows = rendered_rows(app)
        assert [row[1] for row in rows] == [record["request_id"][:8] for record in records]
        assert [row[3] for row in rows] == CALL_DELTAS
        assert "(headers are not kept in parquet)" in preview(app).plain
        await pilot.press("down")
        assert "Fixed." in preview(app).plain  # the streamed response, decoded from the parquet column
        await pilot.press("enter")
        await pilot.pause()
        assert rendered_rows(app)[-1] == ("", "response", "Fixed. [stop]")
        await pilot.press("escape", "escape")
        await pilot.pause()
    assert app.failure is None


@pytest.fixture
def hub_dataset(tmp_path: Path):
    """A fake Hub holding three exported parquet files of three runs."""
    with FakeHub() as hub:
        hub.create_repo("tester/caps-captures")
        for number in range(3):
            run_dir, _ = conversation_run(
                tmp_path / "runs", run_id=f"demo-2025112{number}T081500-a1b2c{number}"
            )
            for path in export_parquet(run_dir, tmp_path / "out"):
                hub.put_file("tester/caps-captures", f"data/{path.name}", path.read_bytes())
        hub.put_file("tester/caps-captures", "README.md", "# card\n")
        yield hub


async def test_hub_dataset_files_calls_messages(hub_dataset: FakeHub, tmp_path: Path) -> None:
    # A probe smaller than these footers: exercises the second ranged read a big footer needs.
    api = HfApi(endpoint=hub_dataset.url, token=False)
    source = HubSource(api, "tester/caps-captures", cache_dir=tmp_path / "cache", footer_probe=1024)
    total = sum(
        len(data)
        for path, data in hub_dataset.files("tester/caps-captures").items()
        if path.endswith(".parquet")
    )
    app = InspectApp(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await settle(app, pilot)  # footers: a second worker fills the rows in
        rows = rendered_rows(app)
        assert [row[0] for row in rows] == sorted(row[0] for row in rows) and len(rows) == 3
        assert all(row[1:5] == ("6", "demo", "org/gpt-test", "2") for row in rows)
        assert "Fix the failing tests in Straße.py" in preview(app).plain
        assert 0 < source.bytes_fetched < total  # footers only
        assert not list((tmp_path / "cache").rglob("*.parquet"))  # nothing downloaded yet

        await pilot.press(*"'a1b2c1")
        await pilot.pause()
        assert len(rendered_rows(app)) == 1
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.level.kind == "calls" and [row[3] for row in rendered_rows(app)] == CALL_DELTAS
        assert len(list((tmp_path / "cache").rglob("*.parquet"))) == 1  # only the opened file

        await pilot.press("enter")
        await pilot.pause()
        assert rendered_rows(app)[0] == ("0", "user", "Fix the failing tests in Straße.py")
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.level.kind == "files" and app.query_one(Input).value == "'a1b2c1"
        app.save_screenshot("inspect-hub-files.svg", str(tmp_path))
        await pilot.press("escape")
        await pilot.pause()
    assert (tmp_path / "inspect-hub-files.svg").read_text().startswith("<svg")


async def test_rid_mode_returns_the_picked_call(runs_dir: Path) -> None:
    run = RunDir.load(runs_dir / RUN_ID)
    expected = [json.loads(line)["request_id"] for line in run.captures_path.read_text().splitlines()]
    app = InspectApp(RunSource(run), pick_rid=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down", "enter")
        await pilot.pause()
    assert app.return_value == expected[2]


async def test_unknown_hub_dataset_ends_with_a_one_line_failure(tmp_path: Path) -> None:
    with FakeHub() as hub:
        app = InspectApp(HubSource(HfApi(endpoint=hub.url, token=False), "tester/missing"))
        async with app.run_test(size=SIZE) as pilot:
            while app.is_running:  # the load fails in its worker, which then ends the app
                await pilot.pause(0.05)
    assert app.failure is not None and app.failure.startswith("hf://datasets/tester/missing: no such dataset")


async def press_at_once(app: InspectApp, pilot, *keys: str) -> None:
    """Keys queued together, as a terminal delivers keys typed faster than the screen redraws:
    `pilot.press` waits for the app to go idle after each key, which hides ordering bugs."""
    for key in keys:
        app.post_message(events.Key(key, "\r" if key == "enter" else None))
    await settle(app, pilot)


@pytest.mark.parametrize("downs", [1, 2, 3])
async def test_rid_down_then_enter_at_once_picks_the_highlighted_call(runs_dir: Path, downs: int) -> None:
    run = RunDir.load(runs_dir / RUN_ID)
    expected = [json.loads(line)["request_id"] for line in run.captures_path.read_text().splitlines()]
    app = InspectApp(RunSource(run), pick_rid=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await press_at_once(app, pilot, *["down"] * downs, "enter")
    assert app.return_value == expected[downs]


async def test_down_then_enter_at_once_opens_the_highlighted_call(runs_dir: Path) -> None:
    app = InspectApp(RunsDirSource(runs_dir))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await press_at_once(app, pilot, "enter")
        assert app.level.kind == "calls"
        await press_at_once(app, pilot, "down", "enter")
        assert app.level.kind == "messages"
        assert app.level.title.startswith("task-1.2 ")
        assert app.levels[-2].highlighted is not None and app.levels[-2].highlighted.cells[0] == "task-1.2"
