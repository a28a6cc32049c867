"""What a dataset card says about each run, computed from the run's staged files at build time.

The publish stage keeps these in the repo's run index and adds them up into the card
(exporter/export/card_sections.py), so a card describes every run the repo holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from exporter.core.usage import TOKEN_KEYS
from exporter.export.card_sections import RunStats
from exporter.shared.runs import RunDir
from exporter.shared.totals import CallFacts, Totals, iso, parquet_facts, totals_of


def captures_stats(
    files: Iterable[tuple[str, Path]], *, has_traces: Mapping[str, bool]
) -> dict[str, RunStats]:
    """Per run, from its staged parquet files ((run id, file) pairs)."""
    by_run: dict[str, list[CallFacts]] = {}
    sizes: Counter[str] = Counter()
    for run, path in files:
        by_run.setdefault(run, []).extend(parquet_facts(str(path)))
        sizes[run] += path.stat().st_size
    stats = {}
    for run, facts in by_run.items():
        totals = totals_of(facts, None)  # cards carry no cost: prices are estimates, tokens are facts
        stats[run] = _totals_stats(totals, Counter(f.model for f in facts), sizes[run]) | {
            "traces": bool(has_traces.get(run))
        }
    return stats


def _totals_stats(totals: Totals, models: Counter[str], size: int) -> RunStats:
    return {
        "rows": totals.calls,
        "bytes": size,
        "agent": next(iter(sorted(totals.agents)), None),
        "models": dict(sorted(models.items())),
        "first": iso(totals.first_at),
        "last": iso(totals.last_at),
        "failed": totals.failed,
        "tokens": totals.usage.tokens(),
    }


def files_stats(files: Iterable[tuple[str, Path]], runs: Iterable[RunDir]) -> dict[str, RunStats]:
    """Per run, for bundles of files (traces, sessions): how many and how big; agent and dates from
    the run (run.json)."""
    known = {run.run_id: run for run in runs}
    dates = {run_id: (run.info.started_at, run.info.ended_at) for run_id, run in known.items()}
    stats: dict[str, RunStats] = {}
    for run, path in files:
        agent = known[run].agent if run in known else None
        entry = stats.setdefault(run, {"rows": 0, "bytes": 0, "agent": agent, "models": {}})
        entry["rows"] += 1
        entry["bytes"] += path.stat().st_size
    for run, entry in stats.items():
        entry["first"], entry["last"] = dates.get(run, (None, None))
    return stats


def rollouts_stats(paths: Mapping[str, Path]) -> dict[str, RunStats]:
    """Per run, from its rollouts parquet: rows, agents, models, dates and the usage struct summed."""
    stats = {}
    for run, path in paths.items():
        table = pq.read_table(path, columns=["agent", "model", "started_at", "ended_at", "usage"])
        tokens: dict[str, int | None] = {}
        for key in TOKEN_KEYS:
            column = pc.struct_field(table["usage"], key)
            tokens[key] = pc.sum(column).as_py() if pc.count(column).as_py() else None
        starts = [value for value in table["started_at"].to_pylist() if value is not None]
        ends = [value for value in table["ended_at"].to_pylist() if value is not None]
        agents = sorted({agent for agent in table["agent"].to_pylist() if agent})
        stats[run] = {
            "rows": table.num_rows,
            "bytes": path.stat().st_size,
            "agent": ", ".join(agents) or None,
            "models": dict(sorted(Counter(m for m in table["model"].to_pylist() if m).items())),
            "first": _iso_datetime(min(starts)) if starts else None,
            "last": _iso_datetime(max(ends)) if ends else None,
            "tokens": tokens,
        }
    return stats


def _iso_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
