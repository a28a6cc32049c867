"""Conversation chains: which recorded calls belong to the same conversation. Pure, no I/O.

An agent resends its whole history on every call, so the calls of one conversation form a chain:
each call's messages *extend* the previous call's messages plus that call's answer, or, after a
compaction or a retry, *rewrite the tail* of them (keep a prefix, replace the rest). Side calls
made during the same task (a title, a summary, a sub-agent, another model answering a one-off)
start their own chains and never overwrite the main one.

The rules, applied within one scope (a run's task):

1. **Parent.** A call's parent is the earlier call it continues best: a Responses call naming
   `previous_response_id` continues that response (its input is only what is new, so its
   conversation is the parent's plus the parent's answer plus that input); any other call
   continues the earlier call whose messages-plus-answer share the longest prefix with its own,
   the latest of equals (after a compaction that keeps the first messages, that is the latest
   state of the conversation). A call that shares no first message with any earlier call has
   no parent; nor has a call offering no tools that shares only its system prompt (two title
   calls share the title instructions, not a conversation; an agent's loop offers tools, and a
   compaction may keep nothing but its system prompt).
2. **Chains.** Several calls can have the same parent (a title call that happens to extend the
   history, the main loop going on). The one that continues the parent's chain is the strongest:
   an *extension* (it sent all of the parent's messages) over a *rewrite* (it replaced their
   tail), then the longest shared prefix, then the parent's model, then the earliest. The others
   start chains of their own.
3. **Main chain.** In each scope one chain carries the task's conversation: the earliest-starting
   chain of several calls that offers tools, else the one of most calls. Every other chain is a
   side chain (`is_sidechain`).

`merge_transcript` then lays a chain's calls end to end: every message once, in order, a rewritten
tail kept (it was said) with its replacement after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Only what the model sees as the conversation: providers and agents add or drop bookkeeping
# keys (a tool message's `name`, reasoning blocks, signatures, cache hints) without changing it.
COMPARED_KEYS = ("role", "content", "tool_call_id", "tool_calls")


def preamble(messages: Sequence[dict[str, Any]]) -> int:
    """How many leading messages are system instructions (`developer` is the Responses name)."""
    return next(
        (n for n, m in enumerate(messages) if m.get("role") not in ("system", "developer")), len(messages)
    )


def message_key(message: dict[str, Any]) -> bytes:
    """A digest of what makes two messages the same turn of a conversation.

    Text is compared without surrounding whitespace and tool arguments as parsed JSON, so an
    answer decoded from a stream equals the copy the agent sends back in its next request.
    """
    compared: dict[str, Any] = {}
    for key in COMPARED_KEYS:
        value = message.get(key)
        if key == "content":
            value = value.strip() if isinstance(value, str) else value
        elif key == "tool_calls" and isinstance(value, list):
            value = [_call_key(call) for call in value]
        if value not in (None, "", []):
            compared[key] = value
    return hashlib.blake2b(msgspec.json.encode(compared, order="sorted"), digest_size=16).digest()


def _call_key(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # not JSON: compared as the text it is
            arguments = json.loads(arguments)
    return {"id": call.get("id"), "name": function.get("name"), "arguments": arguments}


@dataclass(frozen=True, slots=True)
class Delta:
    """How a call's conversation differs from the previous call of its chain (inspect's label)."""

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


def common_prefix(first: Sequence[Hashable], second: Sequence[Hashable]) -> int:
    count = 0
    for before, now in zip(first, second, strict=False):
        if before != now:
            break
        count += 1
    return count


def delta(previous: Sequence[Hashable] | None, current: Sequence[Hashable]) -> Delta:
    """Compare two calls' message keys (None: there is no previous call)."""
    if previous is None:
        return Delta(kept=0, removed=0, added=len(current), first=True)
    kept = common_prefix(previous, current)
    return Delta(kept=kept, removed=len(previous) - kept, added=len(current) - kept, first=False)


@dataclass(frozen=True, slots=True)
class ChainCall:
    """What chaining needs to know of one exchange (an HTTP call or one WebSocket turn)."""

    scope: Hashable  # calls chain only within a scope, e.g. (run_id, task_id)
    order: tuple[Any, ...]  # arrival order within the scope, e.g. (seq, websocket turn)
    keys: tuple[bytes, ...]  # message_key of each request message, as sent
    answer: bytes | None  # message_key of the decoded answer; None when the call got none
    model: str | None = None
    has_tools: bool = False
    response_id: str | None = None
    previous_response_id: str | None = None
    leading_system: bool = False  # keys[0] is a system message (instructions)
    preamble: int = 0  # how many of keys are leading system messages


@dataclass
class Chain:
    scope: Hashable
    calls: list[int]  # indexes into the input, in arrival order
    is_sidechain: bool = False


@dataclass
class Chains:
    """The result: chains in order of their first call, and per input call its place."""

    chains: list[Chain]
    chain_of: list[int]  # input index -> index into `chains`
    parent: list[int | None]  # input index -> the call it continues within its chain
    keys: list[tuple[bytes, ...]]  # input index -> the whole conversation it sent (stateful calls resolved)
    deltas: list[Delta] = field(default_factory=list)


def build_chains(calls: Sequence[ChainCall]) -> Chains:
    """Group calls into chains (rules in the module docstring)."""
    by_scope: dict[Hashable, list[int]] = defaultdict(list)
    for index, call in enumerate(calls):
        by_scope[call.scope].append(index)
    keys: list[tuple[bytes, ...]] = [call.keys for call in calls]
    parent: list[int | None] = [None] * len(calls)
    strength: list[tuple[Any, ...]] = [()] * len(calls)
    for members in by_scope.values():
        members.sort(key=lambda index: calls[index].order)
        by_response = {calls[i].response_id: i for i in members if calls[i].response_id}
        seen = _Prefixes()
        for position, index in enumerate(members):
            call = calls[index]
            linked = by_response.get(call.previous_response_id) if call.previous_response_id else None
            if linked is not None and linked != index:
                keys[index] = tuple(
                    stateful_join(keys[linked], calls[linked].answer, call.keys, call.leading_system)
                )
                # The same request sent again (a retry after a failure) continues that attempt.
                shared, earlier = seen.longest(keys[index])
                retried = earlier is not None and earlier != linked and shared >= len(keys[earlier])
                parent[index] = earlier if retried else linked
                strength[index] = (True, len(keys[index]), True, -position)
            else:
                shared, earlier = seen.longest(keys[index])
                if earlier is not None and (call.has_tools or shared > call.preamble):
                    parent[index] = earlier
                    extends = shared >= len(keys[earlier])
                    same_model = call.model == calls[earlier].model
                    strength[index] = (extends, shared, same_model, -position)
            seen.add(keys[index] + ((call.answer,) if call.answer else ()), index)
    # The strongest child continues its parent's chain; the others start chains of their own.
    heir: dict[int, int] = {}
    for index, up in enumerate(parent):
        if up is not None and (up not in heir or strength[index] > strength[heir[up]]):
            heir[up] = index
    chains: list[Chain] = []
    chain_of = [-1] * len(calls)
    for members in by_scope.values():
        for index in members:
            up = parent[index]
            if up is not None and heir.get(up) == index:
                chain_of[index] = chain_of[up]
                chains[chain_of[index]].calls.append(index)
            else:
                parent[index] = None
                chain_of[index] = len(chains)
                chains.append(Chain(scope=calls[index].scope, calls=[index]))
    _flag_sidechains(chains, calls)
    deltas = [
        delta(None if parent[i] is None else keys[parent[i]], keys[i])  # type: ignore[index]
        for i in range(len(calls))
    ]
    return Chains(chains=chains, chain_of=chain_of, parent=parent, keys=keys, deltas=deltas)


class _Prefixes:
    """A trie of the calls seen so far (messages + answer), each node knowing the latest call
    through it: the longest shared prefix, latest of equals, in one walk down a call's keys."""

    __slots__ = ("children", "latest")

    def __init__(self) -> None:
        self.children: dict[bytes, _Prefixes] = {}
        self.latest: int | None = None

    def add(self, keys: Sequence[bytes], index: int) -> None:
        node = self
        for key in keys:
            node = node.children.setdefault(key, _Prefixes())
            node.latest = index  # calls are added in arrival order: the last one is the latest

    def longest(self, keys: Sequence[bytes]) -> tuple[int, int | None]:
        """(shared prefix length, latest call sharing it); (0, None) when none shares a first message."""
        node, depth = self, 0
        for key in keys:
            child = node.children.get(key)
            if child is None:
                break
            node, depth = child, depth + 1
        return depth, node.latest


def stateful_join[T](
    previous: Sequence[T], answer: T | None, own: Sequence[T], leading_system: bool
) -> list[T]:
    """A stateful call's whole conversation: its parent's, the parent's answer, then the new input.

    New `instructions` replace the old ones (the API applies only the latest), so they take the
    parent's system slot instead of appearing mid-conversation.
    """
    answered = [answer] if answer is not None else []
    if leading_system and own:
        return [own[0], *previous[1:], *answered, *own[1:]]
    return [*previous, *answered, *own]


def _flag_sidechains(chains: list[Chain], calls: Sequence[ChainCall]) -> None:
    by_scope: dict[Hashable, list[Chain]] = defaultdict(list)
    for chain in chains:
        by_scope[chain.scope].append(chain)
    for members in by_scope.values():
        ordered = sorted(members, key=lambda chain: calls[chain.calls[0]].order)
        loops = [
            chain
            for chain in ordered
            if len(chain.calls) > 1 and any(calls[index].has_tools for index in chain.calls)
        ]
        main = loops[0] if loops else max(ordered, key=lambda chain: len(chain.calls))  # first of equals
        for chain in members:
            chain.is_sidechain = chain is not main


def merge_transcript[M](
    steps: Sequence[tuple[Sequence[bytes], Sequence[M], bytes | None, M | None]],
    *,
    resends: Callable[[M, M], bool],
) -> list[tuple[int, M]]:
    """A chain's calls laid end to end: (step index, message) for every message once, in order.

    Each step is (keys, messages, answer key, answer message) of one call, keys and messages
    being the whole conversation it sent. A message is added by the first call that sent it; a
    call that rewrote the tail of what came before adds its new tail after the old one, which
    stays (it was said). The answer a call got is added after its messages (a failed call's
    answer is whatever marks the failure; None adds nothing). When the next call sends back, where
    the answer was, a message that `resends(answer, message)` says is the same turn written
    differently (an agent dropping whitespace or reasoning), the decoded answer stands for both.
    """
    merged: list[tuple[int, M]] = []
    view: list[bytes] = []
    last: M | None = None  # the previous call's answer, when it got one
    for step, (keys, messages, answer_key, answer) in enumerate(steps):
        shared = common_prefix(view, keys)
        if last is not None and shared == len(view) - 1 < len(keys) and resends(last, messages[shared]):
            shared += 1  # the resent answer is the one already shown
        merged += [(step, message) for message in messages[shared:]]
        if answer is not None:
            merged.append((step, answer))
        view = [*keys, answer_key] if answer_key is not None else list(keys)
        last = answer if answer_key is not None else None
    return merged
