"""The report in a real browser: Debian's headless Chromium, driven by Playwright's Python API.

A 1,000-call run (10 tasks of a 100-call tool loop) is reported; the page must load in under 2 s
with no console error, the search must filter calls, and a task must open on a click. Each state
is screenshotted and compared by structure (which blocks are visible, in which order, how many
calls), not by pixels: fonts and anti-aliasing differ between machines, the layout must not.

scripts/test.sh installs Chromium through apt when it is missing; without it this test fails.
Set AGENTCAP_SCREENSHOTS=DIR to keep the screenshots (docs/report.md shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import make_record, write_run
from playwright.sync_api import Browser, Page, expect, sync_playwright

from exporter.report.command import report_command

TASKS, CALLS_PER_TASK = 10, 100
LOAD_BUDGET_MS = 2000
# The network is closed here: without these, Chromium keeps retrying refused connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What a reader sees, block by block (see `structure`).
SUMMARY_BLOCKS = ["h1", "meta", "cards", "charts", "table:per model", "table:per conversation", "toolbar"]


def chromium_path() -> str:
    found = os.environ.get("AGENTCAP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail("chromium is not installed: run scripts/test.sh (it installs it with apt-get)")
    return found


def tool_loop_records(task: int) -> list[dict[str, Any]]:
    """A task's 100 calls: each resends the history plus the last tool call and its result."""
    history: list[dict[str, Any]] = [{"role": "user", "content": f"fix bug {task} (needle-task-{task})"}]
    records = []
    for step in range(CALLS_PER_TASK):
        seq = task * CALLS_PER_TASK + step + 1
        record = make_record(seq=seq, task_id=f"task-{task:02d}", turn=1, messages=list(history),
                             reply=f"step {step} of task {task}", stream=step % 3 == 0)  # fmt: skip
        record["usage"] = {"prompt_tokens": 200 + 40 * step, "completion_tokens": 30, "total_tokens": 230 + 40 * step,
                           "prompt_tokens_details": {"cached_tokens": 40 * step}}  # fmt: skip
        record["duration_ms"] = 200.0 + (step * 37) % 900
        records.append(record)
        call = {"id": f"call_{task}_{step}", "type": "function",
                "function": {"name": "read_file", "arguments": json.dumps({"path": f"src/file_{step}.py"})}}  # fmt: skip
        history += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": f"contents of file_{step}.py\n" * 5},
        ]
    return records


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    records = [record for task in range(TASKS) for record in tool_loop_records(task)]
    run = write_run(root / "runs", "agent-20261121T081500-big", records, agent="demo")
    output = root / "report.html"
    result = CliRunner().invoke(report_command, [str(run), "-o", str(output)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


STRUCTURE_JS = """() => {
  const seen = (el) => el !== null && el.checkVisibility();  // false inside a closed <details> too
  const blocks = [];
  if (seen(document.querySelector('h1'))) blocks.push('h1');
  if (seen(document.querySelector('.meta'))) blocks.push('meta');
  if (seen(document.querySelector('.cards'))) blocks.push('cards');
  if (seen(document.querySelector('.charts'))) blocks.push('charts');
  document.querySelectorAll('details.table').forEach(t => seen(t) && blocks.push('table:' + t.querySelector('summary').textContent));
  if (seen(document.getElementById('toolbar'))) blocks.push('toolbar');
  document.querySelectorAll('details.task').forEach(t => seen(t) && blocks.push(
    'task:' + t.querySelector('summary b').textContent + (t.open ? ':open' : '')));
  const calls = Array.from(document.querySelectorAll('article.call')).filter(seen);
  return {blocks, calls: calls.length, count: document.getElementById('count').textContent,
          charts: document.querySelectorAll('.charts svg path, .charts svg rect').length};
}"""


def structure(page: Page) -> dict[str, Any]:
    return page.evaluate(STRUCTURE_JS)


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AGENTCAP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"report-{name}.png"
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def open_report(page: Page, report_file: Path) -> tuple[list[str], float]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request {request.url} failed"))
    started = time.perf_counter()
    page.goto(report_file.as_uri(), wait_until="load")
    wall_ms = (time.perf_counter() - started) * 1000
    return errors, wall_ms


def test_a_1000_call_report_loads_fast_and_clean(page: Page, report_file: Path, tmp_path: Path) -> None:
    errors, wall_ms = open_report(page, report_file)
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {load: n.loadEventEnd, dom: n.domContentLoadedEventEnd, size: n.decodedBodySize}; }"
    )
    print(f"\n1000-call report: {report_file.stat().st_size / 1e6:.1f} MB, load event {timing['load']:.0f} ms, "
          f"DOMContentLoaded {timing['dom']:.0f} ms, goto wall time {wall_ms:.0f} ms")  # fmt: skip
    assert timing["load"] < LOAD_BUDGET_MS
    assert wall_ms < LOAD_BUDGET_MS
    assert errors == []
    shape = structure(page)
    assert shape["blocks"] == SUMMARY_BLOCKS + [f"task:task-{task:02d}" for task in range(TASKS)]
    assert shape["calls"] == 0  # every task closed: nothing below the fold to lay out
    assert shape["count"] == f"{TASKS * CALLS_PER_TASK} calls"
    assert shape["charts"] >= 3  # input, cache read and output series, latency bars
    screenshot(page, "loaded", tmp_path)


def test_search_filters_calls(page: Page, report_file: Path, tmp_path: Path) -> None:
    errors, _ = open_report(page, report_file)
    # Each task's call 44 sends the tool call of step 42 and its result: one call per task.
    page.fill("#search", "read_file FILE_42.py")
    expect(page.locator("#count")).to_have_text(f"{TASKS} of {TASKS * CALLS_PER_TASK} calls")
    shape = structure(page)
    assert shape["calls"] == TASKS
    assert shape["blocks"] == SUMMARY_BLOCKS + [f"task:task-{task:02d}:open" for task in range(TASKS)]
    # The task's first prompt is new only in its first call.
    page.fill("#search", "needle-task-7")
    expect(page.locator("#count")).to_have_text(f"1 of {TASKS * CALLS_PER_TASK} calls")
    shape = structure(page)
    assert shape["blocks"] == [*SUMMARY_BLOCKS, "task:task-07:open"]  # the matching task opened
    assert shape["calls"] == 1
    page.locator("article.call:not(.hidden)").first.scroll_into_view_if_needed()
    screenshot(page, "search", tmp_path)
    page.fill("#search", "")
    expect(page.locator("#count")).to_have_text(f"{TASKS * CALLS_PER_TASK} calls")
    blocks = structure(page)["blocks"]
    assert [block.split(":")[1] for block in blocks[len(SUMMARY_BLOCKS) :]] == [
        f"task-{t:02d}" for t in range(TASKS)
    ]
    assert errors == []


def test_a_task_expands(page: Page, report_file: Path, tmp_path: Path) -> None:
    errors, _ = open_report(page, report_file)
    page.click("#task-agent-20261121T081500-big-task-03 > summary")
    expect(page.locator("#task-agent-20261121T081500-big-task-03")).to_have_attribute("open", "")
    shape = structure(page)
    blocks = [f"task:task-{task:02d}" + (":open" if task == 3 else "") for task in range(TASKS)]
    assert shape["blocks"] == SUMMARY_BLOCKS + blocks
    assert shape["calls"] == CALLS_PER_TASK
    first = page.locator("#task-agent-20261121T081500-big-task-03 article.call").first
    first.scroll_into_view_if_needed()
    assert first.locator("header .delta").inner_text() == "init 1"
    screenshot(page, "task", tmp_path)
    assert errors == []
