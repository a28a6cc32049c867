"""Hydrating units in worker processes: outcomes come back in unit order, with a bounded number in flight.

Parsing is CPU-bound Python, so threads would not help; processes do. Workers are spawned (safe next to
the parquet writer's thread, and the same on every OS) and import only the parser they are sent (a
format object pickles as a reference to its class), never pyarrow, so each stays small. Units travel in
batches of about `BATCH_BYTES` so per-task overhead stays small, and at most `BATCHES_PER_JOB` batches per
worker are queued or waiting to be consumed, so memory stays flat whatever the corpus size and however
slow the consumer (the parquet writer) is.
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

from exporter.errors import AbortExport, UserError
from exporter.rollouts.base import BrokenUnit, RolloutFormat, Unit

BATCH_BYTES = 2 * 1024 * 1024
BATCH_UNITS = 64
BATCHES_PER_JOB = 2

# What hydrating one unit gave: its rows, or why it is skipped, or why the command must stop.
Outcome = list[dict[str, Any]] | BrokenUnit | UserError
Batch = list[tuple[RolloutFormat, Unit]]
_ROWS_ENCODER = msgspec.msgpack.Encoder()
_ROWS_DECODER = msgspec.msgpack.Decoder(list[dict[str, Any]])


def default_jobs() -> int:
    """The CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hydrate_outcome(fmt: RolloutFormat, unit: Unit) -> Outcome:
    try:
        return fmt.hydrate_rows(unit)
    except (BrokenUnit, UserError) as error:
        return error


def _hydrate_batch(batch: Batch) -> list[Outcome | bytes]:
    return [_packed(hydrate_outcome(fmt, unit)) for fmt, unit in batch]


def _packed(outcome: Outcome) -> Outcome | bytes:
    """Rows as msgpack: 3-4x cheaper to send than pickle (datetimes above all), and they come back equal
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
    """(unit, outcome) for every unit, in order; `jobs` > 1 parses in that many worker processes."""
    batches = _batches(units, formats)
    head = list(itertools.islice(batches, 2))
    if jobs <= 1 or len(head) < 2:  # one batch is not worth starting processes for
        for batch in itertools.chain(head, batches):
            for fmt, unit in batch:
                yield unit, hydrate_outcome(fmt, unit)
        return
    queue = itertools.chain(head, batches)
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


def _batches(units: Iterable[Unit], formats: Callable[[str], RolloutFormat]) -> Iterator[Batch]:
    """Consecutive units grouped up to BATCH_BYTES of files (or BATCH_UNITS units, for database sessions)."""
    batch: Batch = []
    size = 0
    for unit in units:
        batch.append((formats(unit.format), unit))
        size += _input_bytes(unit)
        if size >= BATCH_BYTES or len(batch) >= BATCH_UNITS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _input_bytes(unit: Unit) -> int:
    """What a unit will read; a database session counts as nothing (its batch is bounded by count)."""
    if unit.session_id is not None:
        return 0
    total = 0
    for path in (unit.path, *unit.companions):
        with contextlib.suppress(OSError):  # an unreadable file is reported by the worker, named
            total += path.stat().st_size
    return total
