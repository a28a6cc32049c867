"""Hydrate phase: parse units one at a time into rows, streaming (memory does not grow with the corpus)."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from exporter.errors import UserError
from exporter.rollouts.base import BrokenUnit, Unit
from exporter.rollouts.registry import get_format


def hydrate_unit(unit: Unit) -> list[dict[str, Any]]:
    """The rows of one unit. Raises BrokenUnit (skip it whole) or UserError (unreadable file)."""
    # Parsing allocates millions of small acyclic objects; the cyclic collector would rescan them over
    # and over for nothing (reference counting frees them), costing ~20% of the parse.
    collecting = gc.isenabled()
    gc.disable()
    try:
        rollouts = get_format(unit.format).hydrate(unit)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(f"cannot read {unit.path}: {reason}; check that it exists and is readable") from None
    except sqlite3.DatabaseError as error:
        raise BrokenUnit(f"database error ({error})") from None
    finally:
        if collecting:
            gc.enable()
    return [rollout.to_row() for rollout in rollouts]


def iter_rows(units: Iterable[Unit], *, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Rows of every unit in order; a broken unit is skipped with a warning naming it and why.

    `trace_id`s are unique across the whole output: a second rollout with an id already seen (a file
    copied into two places) gets its relative path appended rather than colliding.
    """
    seen: set[str] = set()
    for unit in units:
        try:
            rows = hydrate_unit(unit)
        except BrokenUnit as error:
            warn(f"{unit.label}: skipped: {error}")
            continue
        for row in rows:
            trace_id, copy = row["trace_id"], 1
            while row["trace_id"] in seen:
                copy += 1
                row["trace_id"] = f"{trace_id}@{unit.relative_path}" + (f"#{copy}" if copy > 2 else "")
            seen.add(row["trace_id"])
            yield row
