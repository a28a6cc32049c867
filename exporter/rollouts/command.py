"""`agentcap rollouts`: normalize native agent traces and agentcap captures into one row shape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import click

from exporter.cli_base import LOCATION, Command, warn
from exporter.core.errors import UserError
from exporter.core.record import CAPTURES_FILE
from exporter.rollouts.base import Unit
from exporter.rollouts.hydrate import iter_rows
from exporter.rollouts.manifest import build_manifest, default_sources
from exporter.rollouts.parallel import default_jobs
from exporter.rollouts.registry import AUTO, FORMAT_NAMES, FORMATS
from exporter.rollouts.sqlite_source import SnapshotStore
from exporter.rollouts.writers import write_rows
from exporter.shared.runs import resolve_targets
from exporter.storage import Location, Url

OUTPUT_SUFFIXES = (".parquet", ".jsonl")


@click.command("rollouts", cls=Command)
@click.argument("sources", nargs=-1, type=LOCATION)
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
    sources: tuple[Location, ...],
    format_name: str,
    output: Path | None,
    recursive: bool,
    file_pattern: str | None,
    jobs: int | None,
) -> None:
    """Normalize agent sessions into one conversation table (one row per session or subagent run).

    SOURCE is a session file, a database or a directory; without SOURCE the agent's standard
    location is read (every agent's for --format auto). A SOURCE URL (s3://…) is a runs dir or run
    in object storage: its captures are read (--format captures or auto).
    """
    if output is not None and str(output) != "-" and output.suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"-o {output}: name the output *.parquet or *.jsonl (or - for stdout)")
    urls = [source for source in sources if isinstance(source, Url)]
    paths = [source for source in sources if isinstance(source, Path)]
    if not sources:
        paths = default_sources(format_name)
        if not paths:
            formats = FORMATS.values() if format_name == AUTO else [FORMATS[format_name]]
            looked = ", ".join(str(root) for fmt in formats for root in fmt.default_roots())
            raise UserError(f"no traces found in the standard locations ({looked}); pass SOURCE paths")
    with SnapshotStore() as snapshots:
        units = remote_capture_units(urls, format_name) + build_manifest(
            paths,
            format_name,
            snapshots=snapshots,
            warn=warn,
            recursive=recursive,
            file_pattern=file_pattern,
        )
        if not units:
            raise UserError(
                f"no {format_name} traces found under {', '.join(map(str, [*urls, *paths]))}; "
                "check the paths, --format or --file-pattern"
            )
        per_format: Counter[str] = Counter()
        rows = iter_rows(units, warn=warn, jobs=jobs or default_jobs())
        count = write_rows(_counted(rows, per_format), output)
    detail = ", ".join(f"{name}: {n}" for name, n in sorted(per_format.items()))
    where = f" → {output}" if output is not None and str(output) != "-" else ""
    click.echo(f"{len(units)} unit(s) → {count} rollout(s){where} ({detail or 'none'})", err=True)


def remote_capture_units(urls: list[Url], format_name: str) -> list[Unit]:
    """The captures of the runs at `urls`, read where they are (streamed; nothing is downloaded whole)."""
    if urls and format_name not in (AUTO, "captures"):
        raise UserError(
            f"--format {format_name}: only agentcap captures are read from a URL; use --format captures"
        )
    units = []
    for url in urls:
        for run in resolve_targets([url.text], all_runs=False, runs_dir=url):
            if run.captures_path.is_file():
                # A RemotePath reads like a Path (open, stat, parent): the captures format needs no more.
                path = cast("Path", run.captures_path)
                units.append(Unit("captures", path, f"{run.path.name}/{CAPTURES_FILE}"))
    return units


def _counted(rows: Iterator[dict[str, Any]], counter: Counter[str]) -> Iterator[dict[str, Any]]:
    for row in rows:
        counter[row["source_kind"]] += 1
        yield row
