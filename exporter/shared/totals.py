"""Totals of calls, and the few facts about a call they are made of, read cheaply from any source.

Facts: a run's `captures.jsonl` is decoded into the export's view of a record (bodies stay bytes);
a parquet file is read column by column, only the small columns (from a Hub dataset, those are
ranged reads: the request and response columns never travel). Files written before the token
columns existed (captures-dataset/1) are normalised from their `usage` column.

Totals: `ls -l`, `agentcap stats`, `inspect`'s previews, the dataset cards and the HTML report all
add calls up here, so a run's totals are the sum over its calls everywhere. Rules:

- tokens: each counter is summed over the calls that reported it; it stays null only when no call
  did (exporter/core/usage.py);
- cost: summed over the calls that have a price; calls that reported tokens but whose model has no
  price are counted in `unpriced` and add nothing (a total is never made to look complete by
  counting them as 0);
- failed: exporter.core.record.call_failed;
- latency percentiles: linear interpolation between the closest ranks (numpy's default), over the
  calls that have a duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import msgspec
import pyarrow.parquet as pq

from exporter.core.errors import UserError
from exporter.core.record import RawRecord, call_failed, present
from exporter.core.usage import TOKEN_KEYS, TokenUsage, normalise_usage
from exporter.shared.prices import PriceTable
from exporter.shared.runs import RunDir, Warn, iter_records, warn_on_stderr
from exporter.shared.wire import answer_usage

FACT_COLUMNS = (
    "request_id",
    "run_id",
    "agent",
    "task_id",
    "seq",
    "model",
    "served_model",
    "api",
    "captured_at",
    "ttfb_ms",
    "duration_ms",
    "status_code",
    "error",
    "usage",
)


@dataclass(slots=True)
class CallFacts:
    request_id: str
    run_id: str
    agent: str
    task_id: str | None
    seq: int | None
    model: str  # the request's model, else the served one (the captures `model` column)
    served_model: str | None
    api: str | None
    captured_at: float | None  # epoch seconds
    ttfb_ms: float | None
    duration_ms: float | None
    failed: bool
    usage: TokenUsage


# ---------------------------------------------------------------- run directories


def run_facts(run: RunDir, *, warn: Warn = warn_on_stderr) -> Iterator[CallFacts]:
    """The facts of every call of a run, in file order; malformed lines skipped by the one line policy.

    The export's view of a record (`RawRecord`): bodies and usage stay bytes, only `usage` is parsed.
    """
    for _line, record in iter_records(run, RawRecord, warn=warn):
        usage = (
            msgspec.json.decode(record.usage)
            if present(record.usage)
            else answer_usage(record.api, record.response)
        )
        yield CallFacts(
            request_id=record.request_id,
            run_id=record.run_id or run.run_id,
            agent=record.agent or run.agent,
            task_id=record.task_id,
            seq=record.seq,
            model=record.model(),
            served_model=record.served_model,
            api=record.api,
            captured_at=record.captured_at,
            ttfb_ms=record.ttfb_ms,
            duration_ms=record.duration_ms,
            failed=record.failed,
            usage=normalise_usage(usage, record.api),
        )


# ---------------------------------------------------------------- parquet


def parquet_facts(source: str | BinaryIO) -> Iterator[CallFacts]:
    """The facts of every row of a captures parquet file (a path, or an open file: a Hub file)."""
    parquet = pq.ParquetFile(source)
    names = set(parquet.schema_arrow.names)
    if not {"request_id", "captured_at", "model"} <= names:
        raise UserError("not a captures parquet file (no request_id, captured_at and model columns)")
    has_tokens = all(name in names for name in TOKEN_KEYS)
    columns = [name for name in FACT_COLUMNS if name in names]
    columns += list(TOKEN_KEYS) if has_tokens else []
    for batch in parquet.iter_batches(columns=columns):
        for row in batch.to_pylist():
            yield _row_facts(row, has_tokens)


def _row_facts(row: dict[str, Any], has_tokens: bool) -> CallFacts:
    if has_tokens:
        usage = TokenUsage(**{key: row[key] for key in TOKEN_KEYS})
    else:  # a captures-dataset/1 file: the same normalisation, from the JSON it kept
        usage = normalise_usage(_json(row.get("usage")), row.get("api"))
    captured = row.get("captured_at")
    return CallFacts(
        request_id=row.get("request_id") or "",
        run_id=row.get("run_id") or "",
        agent=row.get("agent") or "",
        task_id=row.get("task_id"),
        seq=row.get("seq"),
        model=row.get("model") or "",
        served_model=row.get("served_model"),
        api=row.get("api"),
        captured_at=captured.timestamp() if isinstance(captured, datetime) else None,
        ttfb_ms=row.get("ttfb_ms"),
        duration_ms=row.get("duration_ms"),
        failed=call_failed(error=bool(row.get("error")), status_code=row.get("status_code")),
        usage=usage,
    )


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


# ---------------------------------------------------------------- totals


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
