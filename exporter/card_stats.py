"""The generated parts of every dataset card, kept current on each export and push.

A card is the user's to edit. agentcap owns only what lies between its markers,

    <!-- agentcap:stats:start … -->
    … rewritten on every export/push …
    <!-- agentcap:stats:end -->

and three front-matter keys it keeps true: `size_categories`, `dataset_info` (the captures
columns, so `load_dataset` reads files of every schema version together) and `license` (only when
`--license` is given). Everything else is kept byte for byte; a card without the markers gets
them appended.

The numbers cover the whole repo, not just this export: each run's stats are kept in the repo's
run index (`.agentcap/index.json`), written in the same commit as the files they describe, and the
card adds them up. Runs exported by an agentcap that kept no stats are counted as runs only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import DatasetCardData

from exporter.stats.aggregate import Totals, iso, totals_of
from exporter.stats.facts import parquet_facts
from exporter.summary import human_bytes
from exporter.usage import TOKEN_KEYS

RunStats = dict[str, Any]
FRONT_MATTER = re.compile(r"\A---\n(.*?\n)?---\n", re.DOTALL)
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
ROWS_LABEL = {"captures": "calls (rows)", "traces": "trace files", "rollouts": "rollouts (rows)"}
NO_LICENSE = "none set by the publisher (`agentcap export --license ID` sets one)"


def marker(name: str) -> tuple[str, str]:
    start = (
        f"<!-- agentcap:{name}:start · written by agentcap on every export; "
        "edits between these two markers are replaced, edits anywhere else are kept -->"
    )
    return start, f"<!-- agentcap:{name}:end -->"


def generated(name: str, body: str) -> str:
    """A generated block with its markers, as a fresh card carries it."""
    start, end = marker(name)
    return f"{start}\n{body.strip()}\n{end}"


def size_category(rows: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if rows < limit), "n>1B")


# ---------------------------------------------------------------- per-run stats, from staged files


def captures_stats(
    files: Iterable[tuple[str, Path]], *, has_traces: Mapping[str, bool]
) -> dict[str, RunStats]:
    """Per run, from its staged parquet files ((run id, file) pairs)."""
    by_run: dict[str, list[Any]] = {}
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


def files_stats(
    files: Iterable[tuple[str, Path]],
    *,
    agent: str | None,
    dates: Mapping[str, tuple[str | None, str | None]],
) -> dict[str, RunStats]:
    """Per run, for bundles of plain files (traces): how many and how big; dates from run.json."""
    stats: dict[str, RunStats] = {}
    for run, path in files:
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


# ---------------------------------------------------------------- the generated sections


def stats_section(kind: str, runs: Mapping[str, RunStats | None], *, license_id: str | None) -> str:
    known = [stats for stats in runs.values() if stats]
    rows = sum(stats.get("rows") or 0 for stats in known)
    lines = ["## Dataset statistics", "", "| | |", "|---|---|"]
    lines.append(f"| {ROWS_LABEL.get(kind, 'rows')} | {rows:,} |")
    agents = Counter(stats["agent"] for stats in known if stats.get("agent"))
    lines.append(f"| runs | {len(runs):,}" + (f" (agents: {_counts(agents)})" if agents else "") + " |")
    models: Counter[str] = Counter()
    for stats in known:
        models.update(stats.get("models") or {})
    if models:
        lines.append(f"| models | {_counts(models)} |")
    firsts = [stats["first"] for stats in known if stats.get("first")]
    lasts = [stats["last"] for stats in known if stats.get("last")]
    if firsts and lasts:
        lines.append(f"| dates (UTC) | {_day(min(firsts))} → {_day(max(lasts))} |")
    if any(stats.get("failed") is not None for stats in known):
        lines.append(f"| failed calls | {sum(stats.get('failed') or 0 for stats in known):,} |")
    lines += _token_lines(known)
    lines.append(f"| size | {human_bytes(sum(stats.get('bytes') or 0 for stats in known))} |")
    lines.append(f"| license | {f'`{license_id}`' if license_id else NO_LICENSE} |")
    missing = len(runs) - len(known)
    if missing:
        lines += [
            "",
            f"{missing} run(s) exported by an agentcap that kept no statistics are counted as runs only.",
        ]
    lines += ["", _scan_line(runs)]
    return "\n".join(lines)


def _token_lines(known: list[RunStats]) -> list[str]:
    sums: dict[str, int | None] = dict.fromkeys(TOKEN_KEYS)
    for stats in known:
        for key, value in (stats.get("tokens") or {}).items():
            if value is not None and key in sums:
                sums[key] = (sums[key] or 0) + value
    if all(value is None for value in sums.values()):
        return []

    def number(key: str, label: str = "") -> str:
        value = sums[key]
        return "" if value is None else f"{label}{value:,}"

    def extras(*parts: str) -> str:
        shown = [part for part in parts if part]
        return f" ({', '.join(shown)})" if shown else ""

    cache = extras(number("cache_read_tokens", "cache read "), number("cache_write_tokens", "cache write "))
    return [
        f"| input tokens | {number('input_tokens') or '-'}{cache} |",
        f"| output tokens | {number('output_tokens') or '-'}{extras(number('reasoning_tokens', 'reasoning '))} |",
        f"| total tokens | {number('total_tokens') or '-'} |",
    ]


def _counts(counter: Counter[str]) -> str:
    return ", ".join(
        f"{name} {count:,}" for name, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    )


def _day(moment: str) -> str:
    return moment[:10]


def _scan_line(runs: Mapping[str, RunStats | None]) -> str:
    results: Counter[str] = Counter()
    scanners: set[str] = set()
    for stats in runs.values():
        scan = (stats or {}).get("scan") or {}
        results[scan.get("result") or "unknown"] += 1
        if scan.get("scanner"):
            scanners.add(scan["scanner"])
    described = ", ".join(f"{count} {result}" for result, count in sorted(results.items()))
    tools = f" with {', '.join(sorted(scanners))}" if scanners else ""
    return f"**Secret scan** before publishing{tools}, per run: {described}."


# ---------------------------------------------------------------- editing a card in place


def refresh_card(card: str, sections: Mapping[str, str], front: Mapping[str, Any]) -> str:
    """`card` with each generated section replaced (or appended) and the owned front-matter keys set."""
    for name, body in sections.items():
        start, end = marker(name)
        opening = start.split(" ·", 1)[0]
        head = card.find(opening)
        tail = card.find(end, head) if head >= 0 else -1
        if head >= 0 and tail >= 0:
            after_start = card.index("-->", head) + len("-->")
            card = card[:after_start] + "\n" + body.strip() + "\n" + card[tail:]
        else:
            card = card.rstrip("\n") + "\n\n" + generated(name, body) + "\n"
    for key, value in front.items():
        card = set_front_matter(card, key, value)
    return card


def set_front_matter(card: str, key: str, value: Any) -> str:
    """Set one top-level YAML key, leaving every other line of the front matter as it was."""
    rendered = DatasetCardData(**{key: value}).to_yaml().rstrip("\n") + "\n"
    match = FRONT_MATTER.match(card)
    if match is None:
        return f"---\n{rendered}---\n" + card
    yaml = match.group(1) or ""
    lines = yaml.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        yaml = yaml + rendered
    else:
        stop = start + 1
        while stop < len(lines) and lines[stop].startswith((" ", "-", "\t")):
            stop += 1
        if "".join(lines[start:stop]) == rendered:
            return card
        yaml = "".join(lines[:start]) + rendered + "".join(lines[stop:])
    return f"---\n{yaml}---\n" + card[match.end() :]


def card_license(card: str) -> str | None:
    """The `license` the card's front matter declares (set by hand or by --license)."""
    match = FRONT_MATTER.match(card)
    for line in (match.group(1) or "").splitlines() if match else []:
        if line.startswith("license:"):
            value = line.split(":", 1)[1].strip().strip("'\"")
            return value or None
    return None
