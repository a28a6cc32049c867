"""The screenshots in docs/inspect.md, taken by the pilot on the factory run.

Run with AGENTCAP_UPDATE_SCREENSHOTS=1 to rewrite docs/img/inspect-*.svg; otherwise the shots go
to a temporary directory and the test checks they show what the doc says they show.
"""

from __future__ import annotations

import os
from pathlib import Path

from factories import conversation_run
from textual.widgets import DataTable

from exporter.inspect.app import InspectApp
from exporter.inspect.sources import RunsDirSource

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


async def test_screenshots(tmp_path: Path) -> None:
    conversation_run(tmp_path / "runs")
    target = DOCS_IMG if os.environ.get("AGENTCAP_UPDATE_SCREENSHOTS") == "1" else tmp_path / "img"
    target.mkdir(parents=True, exist_ok=True)
    app = InspectApp(RunsDirSource(tmp_path / "runs"))
    shots: dict[str, str] = {}
    async with app.run_test(size=(150, 36)) as pilot:

        async def shoot(name: str) -> None:
            await app.workers.wait_for_complete()
            await pilot.pause()
            shots[name] = Path(app.save_screenshot(f"inspect-{name}.svg", str(target))).read_text()

        await shoot("runs")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.query_one(DataTable).move_cursor(row=1)
        await shoot("calls")
        await pilot.press(*"'readme")
        await shoot("filter")
        await pilot.press("ctrl+u", "enter", "down")
        await shoot("messages")
        await pilot.press("escape", "ctrl+f")
        await shoot("failed")
        await pilot.press("escape", "escape")
    # Textual writes spaces as &#160; in SVG text
    text = {name: svg.replace("&#160;", " ") for name, svg in shots.items()}
    assert "ERRORS" in text["runs"] and "Fix the failing tests" in text["runs"]
    assert "task-1.4" in text["calls"] and "-4 +1" in text["calls"]
    assert "task-1.3" not in text["filter"] and "task-1.2" in text["filter"]
    assert "assistant→read_file" in text["messages"]
    assert "upstream_reset" in text["failed"] and "task-1.1" not in text["failed"]
