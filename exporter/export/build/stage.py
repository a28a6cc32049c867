"""Build stage: runs → staged repo folders (captures parquet + per-agent traces + cards).

Everything is written into a staging directory first; the scan stage reads it there and only a clean
build is published. Nothing in the run directories is ever modified, and traces are copied (never
linked), so redaction can rewrite staged files without touching the originals.

The work per run (index, parquet, trace copies, rollouts, the secret scan of what it publishes) is
one `RunTask`, run by an engine (exporter.engines: this process, a process pool, or Ray). The
driver only hands out the export's stamp, collects the results in run order and writes the cards,
so the staged bytes are the same whichever engine ran the tasks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from exporter.core.errors import UserError
from exporter.core.names import (
    ExportStamp,
    captures_repo,
    parquet_filename,
    rollouts_repo,
    sessions_repo,
    traces_repo,
)
from exporter.core.record import TRACES_DIR
from exporter.engines import EngineOptions, run_tasks
from exporter.export.build.captures_parquet import index_run, write_group
from exporter.export.build.cards import captures_card, captures_features, traces_card
from exporter.export.build.run_stats import captures_stats, files_stats
from exporter.export.build.sessions_dataset import write_run_sessions
from exporter.export.bundles import BuiltExport, BundleFile, RepoBundle, write_bundle
from exporter.shared.paths import contained, copy_beneath
from exporter.shared.runs import CaptureSnapshot, RunDir, stage_run, take_snapshot

if TYPE_CHECKING:
    from exporter.scan.types import RunScan, ScanOptions


@dataclass(frozen=True)
class BuildSettings:
    """What every run's task of one export shares: names, the stamp, and the stages asked for."""

    owner: str
    base: str
    stamp: ExportStamp
    strict: bool = False
    scan: ScanOptions | None = None  # None: --no-scan
    rollouts: bool = False


@dataclass
class RunOutput:
    """What one run's task built: its files per bundle (below the staging folder), its scan, its warnings."""

    snapshot: CaptureSnapshot
    files: dict[str, list[BundleFile]] = field(default_factory=dict)  # bundle name -> files
    native_sessions: list[BundleFile] = field(default_factory=list)  # sessions converted from traces
    scan: RunScan | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunTask:
    """The per-run work of an export, picklable so any engine can run it anywhere."""

    source: RunDir
    settings: BuildSettings

    @property
    def label(self) -> str:
        return self.source.run_id

    def run(self, outbox: Path) -> RunOutput:
        """Build this run's files below `outbox/<owner>/` (a run under a URL is staged locally first)."""
        warnings: list[str] = []
        # Private like the outbox (the export's staging), and cleaned with it if the export is killed.
        outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="agentcap-run-", dir=outbox) as scratch:
            run = stage_run(self.source, Path(scratch))

            def warn(message: str) -> None:
                # A staged run's warnings name its URL, not this worker's temporary copy.
                warnings.append(message.replace(str(run.path), str(self.source.path)))

            output = _build_run(run, outbox / self.settings.owner, self.settings, warn, private=Path(scratch))
            if output.files and self.settings.scan is not None:
                from exporter.scan.engine import scan_runs  # the scanner modules load only when scanning

                output.scan = scan_runs([run], self.settings.scan, workdir=Path(scratch)).runs[0]
        output.warnings = warnings
        return output


def build_export(
    runs: Sequence[RunDir],
    *,
    owner: str,
    base: str,
    staging: Path,
    console: Console,
    strict: bool = False,
    scan: ScanOptions | None = None,
    rollouts: bool = False,
    engine: EngineOptions | None = None,
) -> BuiltExport:
    """Run every run's task, then seal the bundles under `staging/<owner>/`; returns what was built."""
    _refuse_shared_run_ids(runs)
    for run in runs:
        run.trace_files()  # links in a local run's traces/ are refused before anything is written
    settings = BuildSettings(owner, base, ExportStamp.mint(), strict=strict, scan=scan, rollouts=rollouts)
    built = BuiltExport(owner=owner, base=base, runs=[], bundles=[], staging=staging)
    tasks = [RunTask(run, settings) for run in runs]
    with _run_progress(console) as progress:
        bar = progress.add_task(f"{len(tasks)} run(s)", total=len(tasks))

        def done(label: str, output: RunOutput) -> None:
            for message in output.warnings:
                console.print(f"[yellow]warning:[/] {escape(message)}")
            progress.advance(bar)

        work = sum(run.captures_path.stat().st_size for run in runs if run.captures_path.is_file())
        outputs = run_tasks(tasks, staging, engine or EngineOptions(), work=work, done=done)
    files: dict[str, list[BundleFile]] = {}
    for run, output in zip(runs, outputs, strict=True):
        if not output.files:
            built.skipped.append(run)
            console.print(f"[dim]note:[/] {escape(run.run_id)}: no recorded calls, skipped")
            continue
        built.runs.append(run)
        built.snapshots[run.run_id] = output.snapshot
        if output.scan is not None:
            built.scans[run.run_id] = output.scan
        for name, written in output.files.items():
            files.setdefault(name, []).extend(written)
        if output.native_sessions:
            built.native_sessions.setdefault(run.agent, []).extend(output.native_sessions)
    if not built.runs:
        raise UserError(
            "no recorded calls in the given runs: nothing to export (`agentcap ls` shows the counts)"
        )
    agents = sorted({run.agent for run in built.runs if files.get(traces_repo(base, run.agent))})
    built.bundles.append(
        write_bundle(
            kind="captures",
            name=captures_repo(base),
            folder=built.bundle_folder(captures_repo(base)),
            files=files.get(captures_repo(base), []),
            card=captures_card(owner, base, agents),
            base=base,
            front={"dataset_info": {"features": captures_features()}},
            run_stats=captures_stats(
                (
                    (file.run_id, built.bundle_folder(captures_repo(base)) / file.path)
                    for file in files.get(captures_repo(base), [])
                ),
                has_traces={f.run_id: True for agent in agents for f in files[traces_repo(base, agent)]},
            ),
        )
    )
    built.bundles += [_traces_bundle(built, agent, files[traces_repo(base, agent)]) for agent in agents]
    built.sessions = files.get(sessions_repo(base), [])
    if rollouts:
        # pyarrow-heavy: only when asked
        from exporter.export.build.rollouts_dataset import rollouts_bundle

        built.bundles.append(rollouts_bundle(built, files.get(rollouts_repo(base), [])))
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
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
    )


def _build_run(
    run: RunDir, folder: Path, settings: BuildSettings, warn: Callable[[str], None], *, private: Path
) -> RunOutput:
    """Parquet per (model, upstream), the trace copies, the session files and (if asked) the rollouts
    of one local run."""
    # The lines this export holds are fixed here: a proxy still appending cannot change them.
    snapshot = take_snapshot(run)
    index = index_run(run, strict=settings.strict, warn=warn, up_to=snapshot.bytes)
    snapshot = replace(snapshot, lines=index.lines)
    output = RunOutput(snapshot=snapshot)
    if not index.calls:
        return output
    if snapshot.recording:
        warn(
            f"{run.run_id} {_still_recording(run)}: exported a snapshot of its first {snapshot.lines} lines "
            f"({index.calls} calls); export it again once it has ended to publish the rest"
        )
    captures = captures_repo(settings.base)
    parquet = output.files[captures] = []
    for key in sorted(index.groups):
        group = index.groups[key]
        name = parquet_filename(
            agent=run.agent,
            model=group.model,
            provider=group.provider,
            stamp=settings.stamp,
            key="\0".join((run.run_id, *key)),
        )
        write_group(
            run,
            group,
            contained(folder / captures, name),
            strict=settings.strict,
            warn=warn,
            snapshot=snapshot,
            exported_at=settings.stamp.exported_at,
        )
        parquet.append(BundleFile(path=name, run_id=run.run_id))
    traces = _copy_traces(run, folder / traces_repo(settings.base, run.agent))
    if traces:
        output.files[traces_repo(settings.base, run.agent)] = traces
    sessions, output.native_sessions = write_run_sessions(
        run, folder / sessions_repo(settings.base), private=private, warn=warn
    )
    if sessions:
        output.files[sessions_repo(settings.base)] = sessions
    if settings.rollouts:
        from exporter.export.build.rollouts_dataset import write_run_rollouts

        written = write_run_rollouts(run, folder / rollouts_repo(settings.base), private=private, warn=warn)
        if written:
            output.files[rollouts_repo(settings.base)] = [written]
    return output


def _still_recording(run: RunDir) -> str:
    if run.info.status == "running":
        return "is still recording (run.json status is running)"
    return "ends in an unfinished line (still being written, or cut when its proxy stopped)"


def _copy_traces(run: RunDir, folder: Path) -> list[BundleFile]:
    files: list[BundleFile] = []
    for source in run.trace_files():
        inside = source.relative_to(run.local).as_posix()  # traces/…
        relative = f"traces/{run.run_id}/{source.relative_to(run.local / TRACES_DIR).as_posix()}"
        contained(folder, relative)
        copy_beneath(run.local, inside, folder, relative)
        files.append(BundleFile(path=relative, run_id=run.run_id))
    return files


def _traces_bundle(built: BuiltExport, agent: str, files: list[BundleFile]) -> RepoBundle:
    name = traces_repo(built.base, agent)
    return write_bundle(
        kind="traces",
        name=name,
        folder=built.bundle_folder(name),
        files=files,
        card=traces_card(built.owner, built.base, agent, [file.path for file in files]),
        agent=agent,
        base=built.base,
        run_stats=files_stats(
            ((file.run_id, built.bundle_folder(name) / file.path) for file in files), built.runs
        ),
    )
