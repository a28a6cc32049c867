"""`agentcap rollouts`: normalize native agent traces and agentcap captures into one row shape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from exporter.cli_base import Command, warn
from exporter.core.errors import UserError
from exporter.rollouts.hydrate import iter_rows
from exporter.rollouts.manifest import build_manifest, default_sources
from exporter.rollouts.parallel import default_jobs
from exporter.rollouts.registry import AUTO, FORMAT_NAMES, FORMATS
from exporter.rollouts.sqlite_source import SnapshotStore
from exporter.rollouts.writers import write_rows

OUTPUT_SUFFIXES = (".parquet", ".jsonl")


@click.command("rollouts", cls=Command)
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "format_name",
    type=click.Choice(FORMAT_NAMES),
    default=AUTO,
    show_default=True,
    help="Trace format; auto detects it per file or database.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="FILE.parquet or FILE.jsonl (default: JSONL on stdout).",
)
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Walk subdirectories.")
@click.option("--file-pattern", default=None, help="Glob on file names (default: the format's own).")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Parser processes (default: CPUs - 1, at most 2; 1 reads in this process). Same output either way.",
)
def rollouts_command(
    sources: tuple[Path, ...],
    format_name: str,
    output: Path | None,
    recursive: bool,
    file_pattern: str | None,
    jobs: int | None,
) -> None:
    """Normalize agent sessions into one conversation table (one row per session or subagent run).

    SOURCE is a session file, a database or a directory; without SOURCE the agent's standard
    location is read (every agent's for --format auto).
    """
    if output is not None and str(output) != "-" and output.suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"-o {output}: name the output *.parquet or *.jsonl (or - for stdout)")
    if not sources:
        sources = tuple(default_sources(format_name))
        if not sources:
            formats = FORMATS.values() if format_name == AUTO else [FORMATS[format_name]]
            looked = ", ".join(str(root) for fmt in formats for root in fmt.default_roots())
            raise UserError(f"no traces found in the standard locations ({looked}); pass SOURCE paths")
    with SnapshotStore() as snapshots:
        units = build_manifest(
            sources,
            format_name,
            snapshots=snapshots,
            warn=warn,
            recursive=recursive,
            file_pattern=file_pattern,
        )
        if not units:
            raise UserError(
                f"no {format_name} traces found under {', '.join(map(str, sources))}; "
                "check the paths, --format or --file-pattern"
            )
        per_format: Counter[str] = Counter()
        rows = iter_rows(units, warn=warn, jobs=jobs or default_jobs())
        count = write_rows(_counted(rows, per_format), output)
    detail = ", ".join(f"{name}: {n}" for name, n in sorted(per_format.items()))
    where = f" → {output}" if output is not None and str(output) != "-" else ""
    click.echo(f"{len(units)} unit(s) → {count} rollout(s){where} ({detail or 'none'})", err=True)


def _counted(rows: Iterator[dict[str, Any]], counter: Counter[str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        counter[row["source_kind"]] += 1
        yield row
