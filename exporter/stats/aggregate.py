"""Totals of calls: per run, task and model, the same sums wherever they are shown.

`ls -l`, `agentcap stats`, the dataset cards and the HTML report all add calls up here, so a run's
totals are the sum over its calls everywhere. Rules:

- tokens: each counter is summed over the calls that reported it; it stays null only when no call
  did (exporter/usage.py);
- cost: summed over the calls that have a price; calls that reported tokens but whose model has no
  price are counted in `unpriced` and add nothing (a total is never made to look complete by
  counting them as 0);
- failed: exporter.stats.facts.call_failed;
- latency percentiles: linear interpolation between the closest ranks (numpy's default), over the
  calls that have a duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.prices import PriceTable
from exporter.stats.facts import CallFacts
from exporter.usage import TokenUsage


def percentile(values: list[float], fraction: float) -> float | None:
    """The `fraction` quantile of `values` (linear interpolation), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Totals:
    calls: int = 0
    failed: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None  # over the priced calls; None when no call has a price
    priced: int = 0  # calls with a cost
    unpriced: int = 0  # calls that reported tokens but have no price
    durations_ms: list[float] = field(default_factory=list)
    ttfbs_ms: list[float] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    runs: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    tasks: set[tuple[str, str]] = field(default_factory=set)  # (run, task)

    def add(self, call: CallFacts, cost: float | None) -> None:
        self.calls += 1
        self.failed += call.failed
        self.usage.add(call.usage)
        if cost is not None:
            self.cost_usd = cost if self.cost_usd is None else self.cost_usd + cost
            self.priced += 1
        elif call.usage.reported:
            self.unpriced += 1
        if call.duration_ms is not None:
            self.durations_ms.append(call.duration_ms)
        if call.ttfb_ms is not None:
            self.ttfbs_ms.append(call.ttfb_ms)
        if call.captured_at is not None:
            at = call.captured_at
            self.first_at = at if self.first_at is None else min(self.first_at, at)
            self.last_at = at if self.last_at is None else max(self.last_at, at)
        self.runs.add(call.run_id)
        self.agents.add(call.agent)
        if call.model:
            self.models.add(call.model)
        if call.task_id:
            self.tasks.add((call.run_id, call.task_id))

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.durations_ms, 0.5)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.durations_ms, 0.95)

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "tokens": self.usage.tokens(),
            "cost_usd": self.cost_usd,
            "priced_calls": self.priced,
            "unpriced_calls": self.unpriced,
            "latency_ms": {
                "p50": self.p50_ms,
                "p95": self.p95_ms,
                "ttfb_p50": percentile(self.ttfbs_ms, 0.5),
                "ttfb_p95": percentile(self.ttfbs_ms, 0.95),
            },
            "first_at": iso(self.first_at),
            "last_at": iso(self.last_at),
            "runs": len(self.runs),
            "tasks": len(self.tasks),
            "agents": sorted(self.agents),
            "models": sorted(self.models),
        }


def iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def call_cost(call: CallFacts, prices: PriceTable | None) -> float | None:
    """The call's cost: the requested model's price, else the served model's (a dated snapshot).
    No table (dataset cards): no cost."""
    if prices is None:
        return None
    price = prices.price(call.model) or prices.price(call.served_model)
    return None if price is None else price.cost(call.usage)


def group_totals[K: Hashable](
    calls: Iterable[CallFacts], prices: PriceTable, key: Callable[[CallFacts], K]
) -> dict[K, Totals]:
    groups: dict[K, Totals] = {}
    for call in calls:
        groups.setdefault(key(call), Totals()).add(call, call_cost(call, prices))
    return groups


def totals_of(calls: Iterable[CallFacts], prices: PriceTable | None) -> Totals:
    """One total over all of `calls`."""
    totals = Totals()
    for call in calls:
        totals.add(call, call_cost(call, prices))
    return totals


@dataclass
class Stats:
    """Everything `agentcap stats` shows: the whole, and per run, task and model."""

    prices: PriceTable
    total: Totals
    runs: dict[str, Totals]
    tasks: dict[tuple[str, str], Totals]  # (run, task); untagged calls under task ""
    models: dict[str, Totals]

    def as_json(self) -> dict[str, Any]:
        return {
            "prices": {
                "source": self.prices.source,
                "as_of": self.prices.as_of,
                "estimate": self.prices.estimate,
            },
            "total": self.total.as_json(),
            "runs": [{"run_id": run} | totals.as_json() for run, totals in sorted(self.runs.items())],
            "tasks": [
                {"run_id": run, "task_id": task or None} | totals.as_json()
                for (run, task), totals in sorted(self.tasks.items())
            ],
            "models": [{"model": model} | totals.as_json() for model, totals in sorted(self.models.items())],
        }


def compute_stats(calls: Iterable[CallFacts], prices: PriceTable) -> Stats:
    facts = list(calls)
    return Stats(
        prices=prices,
        total=totals_of(facts, prices),
        runs=group_totals(facts, prices, lambda call: call.run_id),
        tasks=group_totals(facts, prices, lambda call: (call.run_id, call.task_id or "")),
        models=group_totals(facts, prices, lambda call: call.model),
    )
