"""Build stage: runs → staged repo folders (captures parquet + per-agent traces + cards).

Everything is written into a staging directory first; the scan stage reads it there and only a clean
build is published. Nothing in the run directories is ever modified, and traces are copied (never
linked), so redaction can rewrite staged files without touching the originals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from exporter.core.errors import UserError
from exporter.core.names import captures_repo, export_timestamp, parquet_filename, traces_repo
from exporter.export.build.captures_parquet import index_run, write_group
from exporter.export.build.cards import captures_card, captures_features, traces_card
from exporter.export.build.run_stats import captures_stats, files_stats
from exporter.export.bundles import BuiltExport, BundleFile, RepoBundle, write_bundle
from exporter.shared.paths import contained, copy_beneath
from exporter.shared.runs import CaptureSnapshot, RunDir, Warn, take_snapshot


def build_export(
    runs: Sequence[RunDir], *, owner: str, base: str, staging: Path, console: Console, strict: bool = False
) -> BuiltExport:
    """Write every bundle of this export under `staging/<owner>/`; returns what was built."""

    def warn(message: str) -> None:
        console.print(f"[yellow]warning:[/] {escape(message)}")

    _refuse_shared_run_ids(runs)
    # Links in traces/ are refused before anything is written, not discovered half-way.
    traces = {run.path: run.trace_files() for run in runs}
    built = BuiltExport(owner=owner, base=base, runs=[], bundles=[], staging=staging)
    captures_folder = built.bundle_folder(captures_repo(base))
    timestamp = export_timestamp()
    parquet_files: list[BundleFile] = []
    with _run_progress(console) as progress:
        for run in runs:
            snapshot, files = _export_run(run, captures_folder, timestamp, progress, warn=warn, strict=strict)
            if files:
                built.runs.append(run)
                built.snapshots[run.run_id] = snapshot
                parquet_files += files
            else:
                built.skipped.append(run)
                console.print(f"[dim]note:[/] {escape(run.run_id)}: no recorded calls, skipped")
    if not built.runs:
        raise UserError(
            "no recorded calls in the given runs: nothing to export (`agentcap ls` shows the counts)"
        )
    traced = {run.run_id: bool(traces[run.path]) for run in built.runs}
    agents = sorted({run.agent for run in built.runs if traced[run.run_id]})
    built.bundles.append(
        write_bundle(
            kind="captures",
            name=captures_repo(base),
            folder=captures_folder,
            files=parquet_files,
            card=captures_card(owner, base, agents),
            base=base,
            front={"dataset_info": {"features": captures_features()}},
            run_stats=captures_stats(
                ((file.run_id, captures_folder / file.path) for file in parquet_files), has_traces=traced
            ),
        )
    )
    built.bundles += [_traces_bundle(built, agent, traces) for agent in agents]
    return built


def _refuse_shared_run_ids(runs: Sequence[RunDir]) -> None:
    """Two runs with one id would write the same published paths: one could overwrite the other."""
    seen: dict[str, RunDir] = {}
    for run in runs:
        other = seen.setdefault(run.run_id, run)
        if other is not run:
            raise UserError(
                f"two runs have the run id {run.run_id} ({other.path} and {run.path}); a run id names its "
                "published files, so export them separately or fix the run_id in one run.json"
            )


def _run_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _export_run(
    run: RunDir, folder: Path, timestamp: str, progress: Progress, *, warn: Warn, strict: bool
) -> tuple[CaptureSnapshot, list[BundleFile]]:
    # The lines this export holds are fixed here: a proxy still appending cannot change them.
    snapshot = take_snapshot(run)
    size = snapshot.bytes
    # Two passes over the file (index, then rows), so the bar counts its bytes twice.
    task = progress.add_task(escape(run.run_id), total=2 * size)

    def advance(count: int) -> None:
        progress.advance(task, count)

    index = index_run(run, strict=strict, warn=warn, progress=advance, up_to=snapshot.bytes)
    snapshot = replace(snapshot, lines=index.lines)
    if snapshot.recording and index.calls:
        warn(
            f"{run.run_id} {_still_recording(run)}: exported a snapshot of its first {snapshot.lines} lines "
            f"({index.calls} calls); export it again once it has ended to publish the rest"
        )
    files = []
    for key in sorted(index.groups):
        group = index.groups[key]
        name = parquet_filename(
            agent=run.agent, model=group.model, provider=group.provider, timestamp=timestamp
        )
        write_group(
            run, group, contained(folder, name), strict=strict, warn=warn, progress=advance, snapshot=snapshot
        )
        files.append(BundleFile(path=name, run_id=run.run_id))
    progress.update(task, completed=2 * size)
    return snapshot, files


def _still_recording(run: RunDir) -> str:
    if run.info.status == "running":
        return "is still recording (run.json status is running)"
    return "ends in an unfinished line (still being written, or cut when its proxy stopped)"


def _traces_bundle(built: BuiltExport, agent: str, traces: dict[Path, list[Path]]) -> RepoBundle:
    name = traces_repo(built.base, agent)
    folder = built.bundle_folder(name)
    files: list[BundleFile] = []
    for run in built.runs:
        if run.agent != agent:
            continue
        for source in traces[run.path]:
            inside = source.relative_to(run.path).as_posix()  # traces/…
            relative = f"traces/{run.run_id}/{source.relative_to(run.traces_path).as_posix()}"
            contained(folder, relative)
            copy_beneath(run.path, inside, folder, relative)
            files.append(BundleFile(path=relative, run_id=run.run_id))
    return write_bundle(
        kind="traces",
        name=name,
        folder=folder,
        files=files,
        card=traces_card(built.owner, built.base, agent, [file.path for file in files]),
        agent=agent,
        base=built.base,
        run_stats=files_stats(((file.run_id, folder / file.path) for file in files), built.runs),
    )
