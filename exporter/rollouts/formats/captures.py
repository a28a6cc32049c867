"""Our own wire captures (`runs/<run>/captures.jsonl`, docs/capture-format.md): one rollout per conversation.

A task's calls are grouped into conversation chains (`exporter.rollouts.conversations`, rules in
`exporter.core.chains`): the main loop, and side chains for titles, summaries, sub-agents and
one-off calls to another model. Each chain becomes one rollout holding every message once, in
order; its counts, models and usage are those of the chain's calls. Failed calls stay visible as
an assistant message flagged `is_error`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from exporter.core.errors import UserError
from exporter.core.record import CAPTURE_SCHEMA, CAPTURES_FILE, CaptureRecord
from exporter.rollouts.base import BrokenUnit, JsonlFormat, Probe, Unit
from exporter.rollouts.conversations import UNTAGGED_TASK, Conversation, conversations
from exporter.rollouts.rollout import Rollout, to_utc
from exporter.shared.runs import RunDir, default_runs_dir, iter_records


class CapturesFormat(JsonlFormat):
    name = "captures"
    agent = "agentcap"
    source_kind = "captures"
    file_pattern = CAPTURES_FILE

    def default_roots(self, env: Mapping[str, str] = os.environ) -> list[Path]:
        return [default_runs_dir()]

    def detects(self, probe: Probe) -> bool:
        return bool(probe.json_lines) and probe.json_lines[0].get("schema") == CAPTURE_SCHEMA

    def hydrate(self, unit: Unit) -> list[Rollout]:
        run = RunDir.load(unit.path.parent, warn=lambda message: None)  # export says so when it picks the run
        warnings: list[str] = []
        try:
            records = iter_records(run, CaptureRecord, strict=False, warn=warnings.append)
            chains = conversations(record for _, record in records)
        except UserError as error:
            raise BrokenUnit(str(error.message)) from None
        if not chains:
            raise BrokenUnit("no capture records")
        is_partial = _ends_cut(unit.path)
        mains = {chain.task_id: session_id(chain) for chain in chains if not chain.is_sidechain}
        return [_rollout(run, unit, chain, mains, warnings, is_partial) for chain in chains]


def session_id(chain: Conversation) -> str:
    """`<run>:<task>` for a task's main conversation, `<run>:<task>:<n>` for its side chains."""
    base = f"{chain.run_id}:{chain.task_id}"
    return f"{base}:{chain.number}" if chain.is_sidechain else base


def _rollout(
    run: RunDir,
    unit: Unit,
    chain: Conversation,
    mains: dict[str, str],
    warnings: list[str],
    is_partial: bool,
) -> Rollout:
    calls = chain.calls
    last = calls[-1]
    final = next((call for call in reversed(calls) if call.answered), None)
    own_id = session_id(chain)
    main_id = mains.get(chain.task_id)
    started = [call.started_at for call in calls if call.started_at is not None]
    ended = [call.ended_at for call in calls if call.ended_at is not None]
    return Rollout(
        agent=last.agent or run.agent,
        source_kind="captures",
        source_path=str(unit.path.resolve()),
        session_id=own_id,
        trace_id=f"captures:{own_id}",
        root_session_id=main_id or own_id,
        parent_session_id=main_id if chain.is_sidechain else None,
        is_sidechain=chain.is_sidechain,
        model=(final or last).model,
        models=chain.models,
        provider=last.upstream_url,
        started_at=to_utc(min(started)) if started else None,
        ended_at=to_utc(max(ended)) if ended else None,
        messages=chain.messages,
        usage=chain.usage,
        is_partial=is_partial,
        parse_warnings=warnings + [p for call in calls for p in call.problems],
        source_meta={
            "run_id": chain.run_id,
            "task_id": None if chain.task_id == UNTAGGED_TASK else chain.task_id,
            "chain": chain.number,
            "api": last.api,
            "calls": len(calls),
            "failed_calls": sum(1 for call in calls if not call.answered),
            "request_ids": list(dict.fromkeys(call.request_id for call in calls)),
            "turns": chain.turns,
            "final_request_id": (final or last).request_id,
            "final_seq": (final or last).seq,
            "finish_reason": (final or last).finish_reason,
            "error": last.error if final is None else None,
        },
    )


def _ends_cut(path: Path) -> bool:
    """True when the file does not end with a newline: the proxy died while writing its last line."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"
