"""The picker: a stack of filtered lists with a preview pane (Textual).

Typing always goes to the filter (as in fzf); the arrows move the list, Enter drills in, Esc goes
back (and quits from the first level). Loading a level (reading a run, downloading a Hub file)
runs in a worker thread, so the screen never freezes; Hub footers fill in as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.coordinate import Coordinate
from textual.driver import Driver
from textual.widgets import DataTable, Footer, Input, Static

from exporter.core.errors import UserError
from exporter.inspect.calls import Call
from exporter.inspect.hub_source import HubSource
from exporter.inspect.query import Query
from exporter.inspect.rows import (
    COLUMNS,
    MessageRow,
    Row,
    call_rows,
    file_row,
    file_rows,
    message_rows,
    preview,
    run_rows,
)
from exporter.inspect.sources import HubFile, RunEntry

MATCH_STYLE = "bold black on yellow"
FOOTER_REFRESH_SECONDS = 0.05
FILTER_HINT = "filter   'exact  ^prefix  suffix$  !not  a | b"


@dataclass
class Level:
    kind: str  # runs | files | calls | messages
    title: str
    rows: list[Row]
    filter: str = ""
    highlighted: Row | None = None
    visible: list[Row] = field(default_factory=list)


class InspectApp(App[str | None]):
    """Browse a source level by level. Returns the chosen request id when `pick_rid` is set."""

    TITLE = "agentcap inspect"
    CSS = """
    #crumbs { height: 1; background: $boost; padding: 0 1; }
    #filter { height: 3; }
    #body { height: 1fr; }
    #rows { width: 55%; }
    #preview-pane { width: 45%; border-left: solid $primary; padding: 0 1; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "go_back", "back", priority=True),
        Binding("down,ctrl+n", "move(1)", "down", show=False),
        Binding("up,ctrl+p", "move(-1)", "up", show=False),
        Binding("pagedown", "move(20)", show=False),
        Binding("pageup", "move(-20)", show=False),
        Binding("shift+down", "scroll_preview(3)", "scroll preview", show=False),
        Binding("shift+up", "scroll_preview(-3)", show=False),
        Binding("ctrl+f", "toggle_failed", "failed only"),
    ]

    def __init__(
        self, source: Any, *, pick_rid: bool = False, driver_class: type[Driver] | None = None
    ) -> None:
        super().__init__(driver_class=driver_class)
        self.source = source
        self.pick_rid = pick_rid
        self.levels: list[Level] = []
        self.failed_only = False
        self.failure: str | None = None  # a load error that ends the app (the command prints it)
        self.loading: str | None = None
        self.footers_pending = 0

    def compose(self) -> ComposeResult:
        yield Static(id="crumbs")
        yield Input(placeholder=FILTER_HINT, id="filter")
        with Horizontal(id="body"):
            yield DataTable(id="rows", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="preview-pane"):
                yield Static(id="preview")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).can_focus = False
        self.query_one("#preview-pane").can_focus = False
        self.query_one(Input).focus()
        first = self.source.first_level
        self._load(f"reading {self.source.title}", lambda: self._first_level(first))

    # ------------------------------------------------------------ loading

    def _first_level(self, kind: str) -> Level:
        if kind == "runs":
            return Level("runs", self.source.title, run_rows(self.source.entries()))
        if kind == "files":
            return Level("files", self.source.title, file_rows(self.source.entries()))
        return Level("calls", self.source.title, call_rows(self.source.calls()))

    def _read_footers(self, files: list[HubFile]) -> None:
        """Footers arrive in parallel after the list is on screen and fill in their rows.

        The readers only queue what they read; a timer on the UI thread applies the queue in
        batches, so a hundred footers cost a few repaints, and no reader waits for the screen.
        """
        self.footers_pending = len(files)
        arrived: SimpleQueue[HubFile] = SimpleQueue()

        def apply() -> None:
            batch = []
            while not arrived.empty():
                batch.append(arrived.get())
            if batch:
                self._footers_read(batch)
            if not self.footers_pending:
                timer.stop()

        timer = self.set_interval(FOOTER_REFRESH_SECONDS, apply)
        self.run_worker(lambda: self.source.read_footers(files, arrived.put), thread=True, group="footers")

    def _load(self, what: str, build: Callable[[], Level]) -> None:
        """Build a level in a thread; push it when done, or end the app on a user error."""
        self.loading = what
        self._update_status()

        def work() -> None:
            try:
                level = build()
            except UserError as error:
                self.call_from_thread(self._fail, error.message)
                return
            except Exception as error:  # a bad file must not kill the picker: say what and stay
                self.call_from_thread(self._load_error, f"{what}: {type(error).__name__}: {error}")
                return
            self.call_from_thread(self._loaded, level)

        self.run_worker(work, thread=True, group="load", exclusive=True)

    def _loaded(self, level: Level) -> None:
        self.loading = None
        self._push(level)
        if level.kind == "files":
            self._read_footers([row.item for row in level.rows])
        self._update_status()

    def _load_error(self, message: str) -> None:
        self.loading = None
        self.notify(message, severity="error", timeout=10)
        if not self.levels:
            self._fail(message)
        self._update_status(message)

    def _fail(self, message: str) -> None:
        self.failure = message
        self.exit(None)

    def _footers_read(self, files: list[HubFile]) -> None:
        self.footers_pending -= len(files)
        table = self.query_one(DataTable)
        done = set(map(id, files))
        for level in self.levels:
            for position, row in enumerate(level.rows):
                if level.kind == "files" and id(row.item) in done:
                    level.rows[position] = fresh = file_row(row.item)
                    if row in level.visible:
                        shown = level.visible.index(row)
                        level.visible[shown] = fresh
                        if level is self.level:
                            for column, cell in enumerate(fresh.cells):
                                table.update_cell_at(Coordinate(shown, column), cell)
                    if level.highlighted is row:
                        level.highlighted = fresh
                        if level is self.level:
                            self._highlight(fresh)
        self._update_status()

    # ------------------------------------------------------------ levels

    @property
    def level(self) -> Level:
        return self.levels[-1]

    def _push(self, level: Level) -> None:
        if self.levels:
            self.level.filter = self.query_one(Input).value
        self.levels.append(level)
        self._show_level()

    def _show_level(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*COLUMNS[self.level.kind])
        with self.prevent(Input.Changed):
            self.query_one(Input).value = self.level.filter
        self._refresh_rows(keep=self.level.highlighted)
        crumbs = " › ".join(level.title for level in self.levels)
        self.query_one("#crumbs", Static).update(Text(crumbs, "bold"))

    def _refresh_rows(self, keep: Row | None = None) -> None:
        level = self.level
        query = Query.parse(self.query_one(Input).value)
        level.visible = [
            row
            for row in level.rows
            if (not self.failed_only or row.failed or row.kind == "messages") and query.matches(row.search)
        ]
        table = self.query_one(DataTable)
        table.clear()
        for position, row in enumerate(level.visible):
            cells = [
                Text(cell, "red") if row.failed and index == 2 else cell
                for index, cell in enumerate(row.cells)
            ]
            table.add_row(*cells, key=str(position))
        target = level.visible.index(keep) if keep in level.visible else 0
        if level.visible:
            table.move_cursor(row=target)
        self._highlight(level.visible[target] if level.visible else None)

    def _highlight(self, row: Row | None) -> None:
        self.level.highlighted = row
        body = (
            Text("no rows match" if self.level.rows else "nothing here", "dim")
            if row is None
            else preview(row)
        )
        for start, end in Query.parse(self.query_one(Input).value).spans(body.plain):
            body.stylize(MATCH_STYLE, start, end)
        self.query_one("#preview", Static).update(body)
        self.query_one("#preview-pane", VerticalScroll).scroll_home(animate=False)
        self._update_status()

    def _update_status(self, message: str | None = None) -> None:
        parts = []
        if self.levels:
            level = self.level
            parts.append(f"{len(level.visible)}/{len(level.rows)} {level.kind}")
        if self.failed_only:
            parts.append("failed only")
        if isinstance(self.source, HubSource):
            pending = f", {self.footers_pending} footers to go" if self.footers_pending else ""
            parts.append(f"{self.source.bytes_fetched:,} bytes read{pending}")
        if self.loading:
            parts.append(f"{self.loading}…")
        if message:
            parts.append(message)
        self.query_one("#status", Static).update(" · ".join(parts))

    # ------------------------------------------------------------ keys

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.levels:
            self._refresh_rows(keep=self.level.highlighted)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The event's row may be stale (keys typed faster than messages travel, or a level pushed
        # meanwhile): the table's cursor is what the user sees, so follow that.
        self._follow_cursor()

    def _follow_cursor(self) -> Row | None:
        """The row under the table's cursor, made the level's highlighted row (preview included)."""
        if not self.levels:
            return None
        visible = self.level.visible
        position = self.query_one(DataTable).cursor_row
        row = visible[position] if 0 <= position < len(visible) else None
        if row is not self.level.highlighted:
            self._highlight(row)
        return row

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_open()

    def action_move(self, step: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def action_scroll_preview(self, lines: int) -> None:
        pane = self.query_one("#preview-pane", VerticalScroll)
        pane.scroll_to(y=pane.scroll_y + lines, animate=False)

    def action_toggle_failed(self) -> None:
        self.failed_only = not self.failed_only
        if self.levels:
            self._refresh_rows(keep=self.level.highlighted)

    def action_go_back(self) -> None:
        if self.loading and self.levels:
            return  # a drill is on its way; going back now would push it onto the wrong level
        if len(self.levels) <= 1:
            self.exit(None)
            return
        self.levels.pop()
        self._show_level()

    def action_open(self) -> None:
        if not self.levels or self.loading:
            return
        # Not `level.highlighted`: Enter can arrive before the RowHighlighted message of the key
        # that moved the cursor just before it.
        row = self._follow_cursor()
        if row is None:
            return
        item = row.item
        if isinstance(item, RunEntry):
            self._load(
                f"reading {item.run.run_id}",
                lambda: Level("calls", item.run.run_id, call_rows(self.source.calls(item))),
            )
        elif isinstance(item, HubFile):
            name = item.path.rsplit("/", 1)[-1]
            self._load(
                f"downloading {name}", lambda: Level("calls", name, call_rows(self.source.calls(item)))
            )
        elif isinstance(item, Call):
            if self.pick_rid:
                self.exit(item.request_id)
                return
            self._push(Level("messages", f"{item.loc} {item.short_id}", message_rows(item)))
        elif isinstance(item, MessageRow) and self.pick_rid:
            self.exit(self._selected_call())

    def _selected_call(self) -> str | None:
        for level in reversed(self.levels):
            if level.highlighted is not None and isinstance(level.highlighted.item, Call):
                return level.highlighted.item.request_id
        return None
