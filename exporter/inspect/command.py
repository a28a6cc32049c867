"""`agentcap inspect [TARGET]`: browse runs, parquet files and Hub datasets call by call."""

from __future__ import annotations

import json
from pathlib import Path

import click
import msgspec

from exporter.cli_base import Command, browse_target_options
from exporter.core.errors import UserError
from exporter.core.record import CaptureRecord, RecordHead
from exporter.inspect.hub_source import HubSource
from exporter.inspect.rows import COLUMNS, Row, call_rows, file_rows, row_json, run_rows
from exporter.inspect.sources import RunsDirSource
from exporter.inspect.targets import TARGET_FORMS, Source, resolve_source
from exporter.shared.prices import env_prices
from exporter.shared.run_summary import ignore
from exporter.shared.runs import (
    RunDir,
    default_runs_dir,
    iter_records,
    list_runs,
)
from exporter.shared.tables import ColumnKind, new_table, output_console

MATCHES_LISTED = 5
COLUMN_KINDS: dict[str, ColumnKind] = {
    "MODELS": "text",
    "MODEL": "text",
    "SUMMARY": "preview",
    **dict.fromkeys(("TASKS", "CALLS", "ERRORS", "ROWS", "SIZE", "#"), "number"),
}


@click.command("inspect", cls=Command)
@click.argument("target", required=False)
@browse_target_options("request ids")
@click.option(
    "--print", "print_table", is_flag=True, help="Print the target's first level as a table and exit."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the target's first level as JSON lines and exit."
)
@click.option("--rid", is_flag=True, help="Pick a call (Enter) and print its full request id, for rid=$(…).")
@click.option(
    "--scan-report",
    "scan_reports",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A scan-report.json to show findings from (default: looked for in the run and runs dirs).",
)
def inspect_command(
    target: str | None,
    runs_dir: Path | None,
    print_table: bool,
    as_json: bool,
    rid: bool,
    scan_reports: tuple[Path, ...],
    revision: str | None,
) -> None:
    """Browse recorded calls: runs → calls → messages, with a live filter and a preview.

    TARGET is nothing (the runs dir), a runs dir, a run directory (either one may be a URL such as
    s3://bucket/runs) or run id, a .parquet file,
    OWNER/NAME (also hf://datasets/OWNER/NAME or a Hub URL), or a request-id prefix, which prints that
    call's request. Enter drills in, Esc goes back, ctrl+f shows only failed calls.
    """
    if print_table and as_json:
        raise UserError("--print and --json both print the first level; pick one")
    runs_dir = runs_dir or default_runs_dir()
    reports = list(scan_reports)
    env_prices()  # the previews' costs: a bad $AGENTCAP_PRICES is one line now, not a crash later
    source = resolve_source(target, runs_dir=runs_dir, reports=reports, revision=revision)
    if source is None:  # a request id: printed, nothing to browse
        print_request(lookup_request(target or "", runs_dir), as_json=as_json)
        return
    if print_table or as_json:
        rows = first_level_rows(source)
        if as_json:
            for row in rows:
                click.echo(json.dumps(row_json(row), ensure_ascii=False))
        else:
            print_rows(source.first_level, rows)
        return
    browse(source, pick_rid=rid)


def first_level_rows(source: Source) -> list[Row]:
    if isinstance(source, RunsDirSource):
        return run_rows(source.entries())
    if isinstance(source, HubSource):
        files = source.entries()
        source.read_footers(files)
        return file_rows(files)
    return call_rows(source.calls())


def print_rows(kind: str, rows: list[Row]) -> None:
    columns = [(column, COLUMN_KINDS.get(column, "id")) for column in COLUMNS[kind]]
    table = new_table(columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row.cells, style="red" if row.failed else None)
    output_console().print(table)


def browse(source: Source, *, pick_rid: bool) -> None:
    from huggingface_hub.utils import disable_progress_bars

    from exporter.inspect.app import InspectApp  # Textual loads only for the picker
    from exporter.inspect.terminal import picker_driver

    disable_progress_bars()  # a download's progress bar would draw over the picker
    app = InspectApp(source, pick_rid=pick_rid, driver_class=picker_driver())
    chosen = app.run()
    if app.failure:
        raise UserError(app.failure)
    if pick_rid:
        if not chosen:
            raise click.exceptions.Exit(1)  # nothing picked: let `rid=$(…) || …` notice
        click.echo(chosen)


# ---------------------------------------------------------------- request ids


def lookup_request(prefix: str, runs_dir: Path) -> bytes:
    """The line of the record whose request id is `prefix` or starts with it; one-line errors otherwise."""
    matches: list[tuple[RunDir, RecordHead, bytes]] = []
    for run in list_runs(runs_dir):
        for line, head in iter_records(run, RecordHead, warn=ignore, check_schema=False):
            if head.request_id == prefix:
                return line.content
            if head.request_id.startswith(prefix):
                matches.append((run, head, line.content))
    if len(matches) == 1:
        return matches[0][2]
    if not matches:
        raise UserError(f"{prefix}: no call with that request id in {runs_dir}; pass {TARGET_FORMS}")
    listed = ", ".join(f"{head.request_id} ({run.run_id})" for run, head, _ in matches[:MATCHES_LISTED])
    more = f" and {len(matches) - MATCHES_LISTED} more" if len(matches) > MATCHES_LISTED else ""
    raise UserError(
        f"{prefix}: request id prefix matches {len(matches)} calls: {listed}{more}; type more of it"
    )


def print_request(line: bytes, *, as_json: bool) -> None:
    """The call's request: the body as sent (pretty JSON), or with --json the whole record as recorded."""
    if as_json:
        click.echo(line.decode())
        return
    request = msgspec.json.decode(line, type=CaptureRecord).request
    if request is not None and len(request.body):
        click.echo(json.dumps(request.body_json(), ensure_ascii=False, indent=2))
    elif request is not None and (request.body_text is not None or request.body_base64 is not None):
        click.echo(request.body_text if request.body_text is not None else request.body_base64)
    else:
        click.echo("(the request had no body)")
