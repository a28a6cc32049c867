"""Hydrate phase: parse units into rows, streaming (memory does not grow with the corpus).

Units are parsed in order, in this process or (`jobs` > 1) in worker processes; rows come out in unit
order either way, so the output does not depend on `jobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from exporter.core.errors import UserError
from exporter.rollouts.base import BrokenUnit, Unit
from exporter.rollouts.parallel import hydrate_all
from exporter.rollouts.registry import get_format


def hydrate_unit(unit: Unit) -> list[dict[str, Any]]:
    """The rows of one unit. Raises BrokenUnit (skip it whole) or UserError (unreadable file)."""
    return get_format(unit.format).hydrate_rows(unit)


def iter_rows(
    units: Iterable[Unit], *, warn: Callable[[str], None], jobs: int = 1
) -> Iterator[dict[str, Any]]:
    """Rows of every unit in order; a broken unit is skipped with a warning naming it and why.

    `trace_id`s are unique across the whole output: a second rollout with an id already seen (a file
    copied into two places) gets its relative path appended rather than colliding.
    """
    seen: set[str] = set()
    for unit, outcome in hydrate_all(units, get_format, jobs=jobs):
        if isinstance(outcome, BrokenUnit):
            warn(f"{unit.label}: skipped: {outcome}")
            continue
        if isinstance(outcome, UserError):
            raise outcome
        for row in outcome:
            trace_id, copy = row["trace_id"], 1
            while row["trace_id"] in seen:
                copy += 1
                row["trace_id"] = f"{trace_id}@{unit.relative_path}" + (f"#{copy}" if copy > 2 else "")
            seen.add(row["trace_id"])
            yield row
