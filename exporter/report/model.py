"""What the report shows, before any HTML: the calls of a source, grouped, with their totals.

Calls are inspect's `Call`s (the same decoding, delta labels and scan findings as `agentcap inspect`);
totals are exporter.stats's, so the report's numbers are the ones `stats` and `ls -l` print.

Sections are one per conversation chain of a task (exporter/core/chains.py, the same chains as
`inspect`'s delta labels and the sessions dataset): a task's main loop, then each side chain (a
title call, a summary, a sub-agent, a one-off question to another model). `section_key` is the one
place that decides the grouping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.inspect.calls import Call, label_calls
from exporter.inspect.hub_source import HubSource
from exporter.inspect.sources import (
    ParquetSource,
    RunsDirSource,
    RunSource,
    load_run_calls,
    read_parquet_calls,
    scan_findings,
)
from exporter.inspect.targets import Source
from exporter.scan.report import REPORT_FILE
from exporter.shared.prices import PriceTable
from exporter.shared.runs import Warn, list_runs
from exporter.shared.totals import Totals, call_cost, group_totals, totals_of
from exporter.shared.wire import ToolCall


@dataclass
class Section:
    run_id: str
    task_id: str  # "" for calls without a task tag
    chain: int  # 1-based among the task's chains
    sidechain: bool
    calls: list[Call]
    totals: Totals

    @property
    def anchor(self) -> str:
        return f"task-{self.run_id}-{self.task_id or 'untagged'}" + (
            f"-{self.chain}" if self.sidechain else ""
        )

    @property
    def title(self) -> str:
        task = self.task_id or "(untagged calls)"
        return f"{task} · side {self.chain}" if self.sidechain else task


@dataclass
class ToolResult:
    """Where a tool call's result came back: the call that carried it, and the result message."""

    call: Call
    message: dict[str, Any]


@dataclass
class Report:
    title: str
    calls: list[Call]
    sections: list[Section]
    total: Totals
    models: dict[str, Totals]
    prices: PriceTable
    costs: dict[str, float | None]  # request id → cost
    # (run, tool call id) → where its result came back / which call's answer made the tool call
    results: dict[tuple[str, str], ToolResult] = field(default_factory=dict)
    origins: dict[tuple[str, str], tuple[Call, ToolCall]] = field(default_factory=dict)


def load_calls(source: Source, *, reports: list[Path], warn: Warn) -> list[Call]:
    """Every call of the source, labelled as `inspect` labels them, with the run's scan findings."""
    if isinstance(source, RunsDirSource):
        found = [source.runs_dir / REPORT_FILE, *reports]
        calls = []
        for run in list_runs(source.runs_dir):
            calls += load_run_calls(run, findings=scan_findings(run, found), warn=warn)
        return calls
    if isinstance(source, RunSource):
        found = [source.run.path.parent / REPORT_FILE, *reports]
        return load_run_calls(source.run, findings=scan_findings(source.run, found), warn=warn)
    if isinstance(source, ParquetSource):
        return read_parquet_calls(source.path)
    return _hub_calls(source)


def _hub_calls(source: HubSource) -> list[Call]:
    calls: list[Call] = []
    for file in source.entries():
        calls += source.calls(file)
    return label_calls(calls)  # one run's files (one per model) are numbered together


def section_key(call: Call) -> tuple[str, str, int, bool]:
    """(run, task, chain, side chain): a task's main chain first, its side chains after it."""
    return (call.run_id or "", call.task_id or "", call.chain, call.sidechain)


def build_report(title: str, calls: Iterable[Call], prices: PriceTable) -> Report:
    ordered = list(calls)
    facts = {call.request_id: call.facts() for call in ordered}
    grouped: dict[tuple[str, str, int, bool], list[Call]] = {}
    for call in ordered:
        grouped.setdefault(section_key(call), []).append(call)
    sections = [
        Section(run, task, chain, side, members, totals_of((facts[c.request_id] for c in members), prices))
        for (run, task, chain, side), members in sorted(grouped.items(), key=lambda item: _order(item[0]))
    ]
    report = Report(
        title=title,
        calls=ordered,
        sections=sections,
        total=totals_of(facts.values(), prices),
        models=group_totals(facts.values(), prices, lambda call: call.model),
        prices=prices,
        costs={rid: call_cost(fact, prices) for rid, fact in facts.items()},
    )
    _stitch_tool_calls(report)
    return report


def _order(key: tuple[str, str, int, bool]) -> tuple[str, str, bool, int]:
    run, task, chain, side = key
    return (run, task, side, chain)


def _stitch_tool_calls(report: Report) -> None:
    """Pair each tool call with the message that answered it, across calls of the same section."""
    for section in report.sections:
        for call in section.calls:
            run = call.run_id or ""
            new = call.messages[call.change.kept :]
            # A tool call is made by a response; a conversation that starts mid-way (or a parquet of
            # one model's calls) may only show it in an assistant message it sends back.
            for made in [
                *(ToolCall.from_openai(c) for m in new for c in _tool_calls(m)),
                *call.decoded.tool_calls,
            ]:
                if made.id:
                    report.origins[(run, made.id)] = report.origins.get((run, made.id)) or (call, made)
            for message in new:
                call_id = message.get("tool_call_id")
                if message.get("role") == "tool" and isinstance(call_id, str):
                    report.results.setdefault((run, call_id), ToolResult(call, message))


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") if message.get("role") == "assistant" else None
    return [call for call in calls or [] if isinstance(call, dict)]
