"""How a call's conversation differs from the previous call of the same task.

Agents resend the whole history on every call. Mostly they append (the last answer, tool
results, a new user turn); sometimes they rewrite it (compaction, a dropped reasoning block, a
retried turn). The label makes both visible at a glance:

    init 3    first call of the task, 3 messages
    +2        the previous call's messages, then 2 new ones
    -4 +1     the last 4 of the previous messages were replaced by 1 different one
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

# Only what the model sees as the conversation: providers and agents add or drop bookkeeping
# keys (a tool message's `name`, reasoning signatures, cache hints) without changing it.
COMPARED_KEYS = ("role", "content", "tool_call_id", "tool_calls")


@dataclass(frozen=True, slots=True)
class Delta:
    kept: int  # length of the common prefix with the previous call
    removed: int
    added: int
    first: bool

    @property
    def label(self) -> str:
        if self.first:
            return f"init {self.added}"
        if self.removed:
            return f"-{self.removed} +{self.added}"
        return f"+{self.added}"


def message_key(message: dict[str, Any]) -> bytes:
    """A digest of the compared keys; content-part lists and tool calls compare with sorted keys."""
    compared = {key: message.get(key) for key in COMPARED_KEYS if message.get(key) not in (None, "", [])}
    return hashlib.blake2b(msgspec.json.encode(compared, order="sorted"), digest_size=16).digest()


def delta(previous: Sequence[Hashable] | None, current: Sequence[Hashable]) -> Delta:
    """Compare two calls' message keys (None: there is no previous call)."""
    if previous is None:
        return Delta(kept=0, removed=0, added=len(current), first=True)
    kept = 0
    for before, now in zip(previous, current, strict=False):
        if before != now:
            break
        kept += 1
    return Delta(kept=kept, removed=len(previous) - kept, added=len(current) - kept, first=False)
