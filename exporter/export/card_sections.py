"""The generated parts of every dataset card, kept current on each export and push (local or Hub).

A card is the user's to edit. agentcap owns only what lies between its markers,

    <!-- agentcap:stats:start … -->
    … rewritten on every export/push …
    <!-- agentcap:stats:end -->

and a few front-matter keys it keeps true: `size_categories`, the bundle's own (`dataset_info` for
the captures columns, so `load_dataset` reads files of every schema version together) and `license`
(only when `--license` is given). Everything else is kept byte for byte; a card without the markers gets
them appended.

The numbers cover the whole repo, not just this export: each run's stats are kept in the repo's
run index (`.agentcap/index.json`), written in the same commit as the files they describe, and the
card adds them up. Runs exported by an agentcap that kept no stats are counted as runs only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from huggingface_hub import DatasetCardData

from exporter.core.names import traces_repo
from exporter.core.usage import TOKEN_KEYS
from exporter.export.bundles import RepoBundle
from exporter.shared.tables import human_bytes

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
ROWS_LABEL = {
    "captures": "calls (rows)",
    "traces": "trace files",
    "sessions": "sessions (files)",
    "rollouts": "rollouts (rows)",
}
NO_LICENSE = "none set by the publisher (`agentcap export --license ID` sets one)"
HUB = "https://huggingface.co/datasets"
PENDING = "(written when the dataset is published)"
TASK_CATEGORIES = ["text-generation"]  # what the Hub's task filter lists LLM conversation data under


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


def traces_links(owner: str, base: str, runs: Mapping[str, RunStats | None]) -> str:
    """The captures card's list of the traces datasets beside it: agents whose runs had traces."""
    agents = {stats.get("agent") for stats in runs.values() if stats and stats.get("traces")}
    repos = [f"{owner}/{traces_repo(base, agent)}" for agent in sorted(a for a in agents if a)]
    return "\n".join(f"- [{repo}]({HUB}/{repo})" for repo in repos) or "- (none yet)"


def current_card(
    bundle: RepoBundle,
    card: str,
    runs: Mapping[str, RunStats | None],
    *,
    owner: str,
    license_id: str | None = None,
    scan_section: str | None = None,
) -> str:
    """`card` (the repo's, or the new repo's template) with its generated parts describing `runs`,
    every run the repo holds after this export. The scan section is rewritten only by an export
    that scanned (or said --no-scan)."""
    license_id = license_id or card_license(card)
    sections = {"stats": stats_section(bundle.kind, runs, license_id=license_id)}
    if bundle.kind == "captures":
        sections["traces"] = traces_links(owner, bundle.base, runs)
    if scan_section is not None:
        sections["scan"] = scan_section
    rows = sum((stats or {}).get("rows") or 0 for stats in runs.values())
    front: dict[str, Any] = {"size_categories": [size_category(rows)], **bundle.front}
    if license_id:
        front["license"] = license_id
    return refresh_card(card, sections, front)
