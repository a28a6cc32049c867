"""The table printed at the end of an export: what was built and where it went."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from exporter.export.bundles import BuiltExport, RepoBundle
from exporter.shared.display import human_bytes


def bundle_rows(bundle: RepoBundle) -> int | None:
    """Rows across the bundle's parquet files (read from their footers); None if it has none."""
    parquet = [file for file in bundle.files if file.path.endswith(".parquet")]
    if not parquet:
        return None
    return sum(pq.read_metadata(bundle.local_path(file)).num_rows for file in parquet)


def print_summary(console: Console, built: BuiltExport, destinations: Mapping[str, str]) -> None:
    table = Table(title=f"agentcap export: {len(built.runs)} run(s)", title_justify="left")
    table.add_column("dataset", overflow="fold")
    for column in ("runs", "rows", "files", "size"):
        table.add_column(column, justify="right")
    table.add_column("written to", overflow="fold")
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
