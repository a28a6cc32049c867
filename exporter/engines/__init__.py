"""Engines: where an export's per-run tasks run — in this process, a local process pool, or on Ray.

A task is a picklable object with a `label` (its run id) and `run(outbox)`, which writes its files
below `outbox` and returns a picklable result. `run_tasks` gives the results back in task order, so
the caller's output does not depend on the engine or on which task finished first. A task that
fails stops the whole batch: `TaskFailed` names its label and reason, the other tasks are
cancelled, and the caller publishes nothing.

- local: one task after the other, in this process (the default for one run, or little work).
- processes: a pool of spawned worker processes on this machine (the default for several runs
  holding `PROCESSES_MIN_WORK` or more: below that, starting workers costs more than it saves).
- ray: Ray tasks on a cluster (`--ray-address`), or on a Ray instance started here (exporter.engines.ray_tasks).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from exporter.core.errors import AbortExport, AgentcapError, UserError

ENGINES = ("local", "processes", "ray")
# Each spawned worker imports pyarrow and the exporter (about a second of CPU) before its first run.
PROCESSES_MIN_WORK = 32 * 1024 * 1024
EngineName = Literal["local", "processes", "ray"]

R_co = TypeVar("R_co", covariant=True)


class Task(Protocol[R_co]):
    @property
    def label(self) -> str: ...

    def run(self, outbox: Path) -> R_co: ...


class TaskFailed(AbortExport):
    """One task failed (a bug, the environment): the batch stops and nothing is published (exit 1)."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"run {label} failed: {reason}; nothing was published")
        self.label = label


class TaskRefused(UserError):
    """One task met something the user can fix (a malformed run, a missing tool): exit 2, nothing published."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"run {label} failed: {reason}; nothing was published")
        self.label = label


@dataclass(frozen=True)
class EngineOptions:
    name: EngineName | None = None  # None: local for one task (or little work), processes for several
    workers: int | None = None  # None: one per CPU here (processes), the whole cluster (ray)
    ray_address: str | None = None  # None: RAY_ADDRESS, else a Ray instance started for this export

    def __post_init__(self) -> None:
        if self.ray_address is not None and self.name not in (None, "ray"):
            raise UserError(f"--ray-address only works with --engine ray (not --engine {self.name})")

    def preflight(self) -> None:
        """Fail before any work when the engine cannot run: Ray missing, or its address silent."""
        if self.name == "ray" or self.ray_address is not None:
            from exporter.engines.ray_tasks import preflight

            preflight(self.ray_address)

    def resolved(self, tasks: int, work: int) -> EngineName:
        """The engine for `tasks` tasks holding `work` bytes of input in all."""
        if self.name is not None:
            return self.name
        if self.ray_address is not None:
            return "ray"
        return "processes" if tasks > 1 and work >= PROCESSES_MIN_WORK else "local"


@dataclass(frozen=True)
class Outcome[T]:
    """What a task gave back, across a process or node boundary: its result, or why it failed."""

    result: T | None = None
    error: str | None = None
    user_error: bool = False  # the error is a UserError: something the user can fix (exit 2)


def guarded[T](task: Task[T], outbox: Path) -> Outcome[T]:
    """Run `task`, turning any failure into a reason (exceptions do not all cross a pickle boundary)."""
    try:
        return Outcome(result=task.run(outbox))
    except AgentcapError as error:  # our one-line errors: their message says it all
        return Outcome(error=error.message, user_error=isinstance(error, UserError))
    except Exception as error:  # a bug or an environment failure in a worker: reported, never lost
        return Outcome(error=f"{type(error).__name__}: {error}")


def run_tasks[R](
    tasks: Sequence[Task[R]],
    outbox: Path,
    options: EngineOptions,
    *,
    work: int = 0,
    done: Callable[[str, R], None] = lambda _label, _result: None,
) -> list[R]:
    """Run every task (engine per `options`, `work` bytes in all); their results in task order.

    `done` hears of each task (its label and result) as it ends.
    """
    if not tasks:
        return []
    engine = options.resolved(len(tasks), work)
    outcomes: Generator[tuple[int, Outcome[R]]]
    if engine == "ray":
        from exporter.engines.ray_tasks import run_on_ray

        outcomes = run_on_ray(tasks, outbox, workers=options.workers, address=options.ray_address)
    elif engine == "processes":
        outcomes = _run_in_processes(tasks, outbox, workers=options.workers or cpu_count())
    else:
        outcomes = ((index, guarded(task, outbox)) for index, task in enumerate(tasks))
    results: dict[int, R] = {}
    with contextlib.closing(outcomes):  # a failure cancels what has not started yet
        for index, outcome in outcomes:
            if outcome.error is not None or outcome.result is None:
                failure = TaskRefused if outcome.user_error else TaskFailed
                raise failure(tasks[index].label, outcome.error or "no result")
            results[index] = outcome.result
            done(tasks[index].label, outcome.result)
    return [results[index] for index in range(len(tasks))]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_in_processes[T](
    tasks: Sequence[Task[T]], outbox: Path, *, workers: int
) -> Generator[tuple[int, Outcome[T]]]:
    """Workers forked from a fresh server process that imported the exporter once (`forkserver`: safe
    next to pyarrow's threads, and each worker starts without paying the imports again); spawned
    where there is no forkserver. At most `workers` busy."""
    context: BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["exporter.export.build.stage", "exporter.scan.engine"])
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        pending: dict[Future[Outcome[T]], int] = {
            pool.submit(guarded, task, outbox): index for index, task in enumerate(tasks)
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    try:
                        yield index, future.result()
                    except BrokenProcessPool:
                        yield index, Outcome(error="its worker process died (out of memory? killed?)")
        finally:
            for future in pending:
                future.cancel()
