"""Hydrating units in worker processes: outcomes come back in unit order, with a bounded number in flight.

Parsing is CPU-bound Python, so threads would not help; processes do. Workers are spawned (safe next to
the parquet writer's thread, and the same on every OS) and import only the parser they are sent (a
format object pickles as a reference to its class), never pyarrow, so each stays small. Units travel in
batches of about `BATCH_WORK` so per-task overhead stays small, and at most `BATCHES_PER_JOB` batches per
worker are queued or waiting to be consumed, so memory stays flat whatever the corpus size and however
slow the consumer (the parquet writer) is. Small inputs are parsed in this process: below
`PARALLEL_MIN_WORK`, starting workers would cost more than it saves. As with any spawned process, a
program calling this with `jobs` > 1 needs the `if __name__ == "__main__":` guard (console scripts have it).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import msgspec

from exporter.core.errors import AbortExport, UserError
from exporter.rollouts.base import BrokenUnit, RolloutFormat, Unit

# Work is counted in bytes of JSONL to parse; a database session takes about as long as 64 KiB of it.
SESSION_WORK = 64 * 1024
BATCH_WORK = 2 * 1024 * 1024
BATCH_UNITS = 64
BATCHES_PER_JOB = 2
# Below this much work, starting worker processes (~0.1 s each, importing Python) costs more than it saves.
PARALLEL_MIN_WORK = 32 * 1024 * 1024
# The main process decodes the workers' rows, converts them to Arrow and writes parquet: about a core's
# worth of work, and the bound once two workers feed it (measured on 298 MB of Claude sessions: the main
# thread needs ~0.9 s of CPU, two workers ~1.2 s each). Sending rows costs ~0.8 s of CPU in all, and each
# worker ~25 MB of RSS, so more workers by default would cost memory for no speed.
MAX_DEFAULT_JOBS = 2

# What hydrating one unit gave: its rows, or why it is skipped, or why the command must stop.
Outcome = list[dict[str, Any]] | BrokenUnit | UserError
Batch = list[tuple[RolloutFormat, Unit]]
_ROWS_ENCODER = msgspec.msgpack.Encoder()
_ROWS_DECODER = msgspec.msgpack.Decoder(list[dict[str, Any]])


def default_jobs() -> int:
    """Parser processes by default: one per CPU left after the main process, at most MAX_DEFAULT_JOBS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus - 1, MAX_DEFAULT_JOBS))


def hydrate_outcome(fmt: RolloutFormat, unit: Unit) -> Outcome:
    try:
        return fmt.hydrate_rows(unit)
    except (BrokenUnit, UserError) as error:
        return error


def _hydrate_batch(batch: Batch) -> list[Outcome | bytes]:
    return [_packed(hydrate_outcome(fmt, unit)) for fmt, unit in batch]


def _packed(outcome: Outcome) -> Outcome | bytes:
    """Rows as msgpack: half the cost of pickle (datetimes above all), and they come back equal
    (dicts, lists, scalars, UTC datetimes). A value msgpack cannot hold (an int beyond 64 bits, a lone
    surrogate) sends that unit's rows pickled instead."""
    if isinstance(outcome, list):
        try:
            return _ROWS_ENCODER.encode(outcome)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            pass
    return outcome


def _unpacked(outcome: Outcome | bytes) -> Outcome:
    return _ROWS_DECODER.decode(outcome) if isinstance(outcome, bytes) else outcome


def hydrate_all(
    units: Iterable[Unit], formats: Callable[[str], RolloutFormat], *, jobs: int
) -> Iterator[tuple[Unit, Outcome]]:
    """(unit, outcome) for every unit, in order; `jobs` > 1 parses in that many worker processes when
    there is enough work to pay for starting them."""
    batches = _batches(units, formats)
    head: list[Batch] = []
    work = 0
    if jobs > 1:
        for batch_work, batch in batches:  # look ahead only as far as deciding needs
            head.append(batch)
            work += batch_work
            if work >= PARALLEL_MIN_WORK:
                break
    queue = itertools.chain(head, (batch for _, batch in batches))
    if jobs <= 1 or work < PARALLEL_MIN_WORK:
        for batch in queue:
            for fmt, unit in batch:
                yield unit, hydrate_outcome(fmt, unit)
        return
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[tuple[Batch, Future[list[Outcome | bytes]]]] = deque()
    try:
        for batch in itertools.islice(queue, jobs * BATCHES_PER_JOB):
            pending.append((batch, pool.submit(_hydrate_batch, batch)))
        while pending:
            batch, future = pending.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                raise AbortExport(
                    f"a parser process died while reading {batch[0][1].label} (out of memory?); "
                    "rerun with --jobs 1 to read in one process"
                ) from None
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(_hydrate_batch, following)))
            for (_, unit), outcome in zip(batch, outcomes, strict=True):
                yield unit, _unpacked(outcome)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batches(units: Iterable[Unit], formats: Callable[[str], RolloutFormat]) -> Iterator[tuple[int, Batch]]:
    """(work, batch): consecutive units grouped up to BATCH_WORK of work or BATCH_UNITS units."""
    batch: Batch = []
    work = 0
    for unit in units:
        batch.append((formats(unit.format), unit))
        work += _work(unit)
        if work >= BATCH_WORK or len(batch) >= BATCH_UNITS:
            yield work, batch
            batch, work = [], 0
    if batch:
        yield work, batch


def _work(unit: Unit) -> int:
    """A unit's parsing work in bytes of JSONL: its files' size, or SESSION_WORK for a database session."""
    if unit.session_id is not None:
        return SESSION_WORK
    total = 0
    for path in (unit.path, *unit.companions):
        with contextlib.suppress(OSError):  # an unreadable file is reported by the worker, named
            total += path.stat().st_size
    return total
