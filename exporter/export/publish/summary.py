"""The table printed at the end of an export: what was built and where it went."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow.parquet as pq
from rich.console import Console

from exporter.export.bundles import BuiltExport, RepoBundle
from exporter.shared.tables import ColumnKind, human_bytes, new_table


def bundle_rows(bundle: RepoBundle) -> int | None:
    """Rows across the bundle's parquet files (read from their footers); None if it has none."""
    parquet = [file for file in bundle.files if file.path.endswith(".parquet")]
    if not parquet:
        return None
    return sum(int(pq.read_metadata(bundle.local_path(file)).num_rows) for file in parquet)


def print_summary(console: Console, built: BuiltExport, destinations: Mapping[str, str]) -> None:
    columns: list[tuple[str, ColumnKind]] = [
        ("dataset", "id"),
        *((column, "number") for column in ("runs", "rows", "files", "size")),
        ("written to", "id"),
    ]
    title = f"agentcap export: {len(built.runs)} run(s)"
    if built.partial_runs:
        title += f", {len(built.partial_runs)} still recording (partial)"
    table = new_table(columns, title=title, title_justify="left")
    for bundle in built.bundles:
        rows = bundle_rows(bundle)
        table.add_row(
            f"{built.owner}/{bundle.name}",
            str(len({file.run_id for file in bundle.files})),
            "-" if rows is None else str(rows),
            str(len(bundle.files)),
            human_bytes(bundle.total_bytes()),
            destinations.get(bundle.name, "-"),
        )
    console.print(table)
