"""The chain builder (exporter/chains.py): which calls continue which conversation, pure and small."""

from __future__ import annotations

from typing import Any

from exporter.core.chains import ChainCall, build_chains, merge_transcript, message_key, preamble


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "", *calls: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": c, "type": "function", "function": {"name": "read", "arguments": '{"a": 1}'}}
            for c in calls
        ]
    return message


def tool(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


SYSTEM = {"role": "system", "content": "You are an agent."}


def call(
    messages: list[dict[str, Any]],
    answer: dict[str, Any] | None,
    seq: int,
    *,
    model: str = "big",
    tools: bool = True,
    **extra: Any,
) -> tuple[ChainCall, list[dict[str, Any]], dict[str, Any] | None]:
    chain_call = ChainCall(
        scope=("run", "task"),
        order=(seq, 0),
        keys=tuple(message_key(m) for m in messages),
        answer=message_key(answer) if answer else None,
        model=model,
        has_tools=tools,
        preamble=preamble(messages),
        **extra,
    )
    return chain_call, messages, answer


def chains_of(calls: list[tuple[ChainCall, list, Any]]) -> list[tuple[list[int], bool]]:
    result = build_chains([c for c, _, _ in calls])
    return [([calls[i][0].order[0] for i in chain.calls], chain.is_sidechain) for chain in result.chains]


def test_extension_retry_compaction_title_and_subagent() -> None:
    first = [SYSTEM, user("fix the tests")]
    a1 = assistant("", "c1")
    second = [*first, a1, tool("c1", "ok")]
    a2 = assistant("fixed")
    third = [*second, a2, user("add a changelog")]
    compacted = [SYSTEM, user("fix the tests"), user("Summary: tests fixed; changelog next")]
    calls = [
        call(
            [{"role": "system", "content": "Make a title."}, user("fix the tests")],
            assistant("T"),
            1,
            model="tiny",
            tools=False,
        ),
        call(first, a1, 2),
        call(second, None, 3),  # failed: no answer
        call(second, a2, 4),  # the retry
        call(
            [{"role": "system", "content": "You are a sub-agent."}, user("look at CI")],
            assistant("", "s1"),
            5,
        ),
        call(third, assistant("added"), 6),
        call(compacted, assistant("continuing"), 7),
        call(
            [
                {"role": "system", "content": "You are a sub-agent."},
                user("look at CI"),
                assistant("", "s1"),
                tool("s1", "red"),
            ],
            assistant("CI is red"),
            8,
        ),
    ]
    assert chains_of(calls) == [([1], True), ([2, 3, 4, 6, 7], False), ([5, 8], True)]


def test_a_side_call_extending_the_history_does_not_take_the_chain() -> None:
    """A one-off to another model that appends a question to the main history is a side chain,
    even when the agent resends the main answer reformatted (so it does not compare equal)."""
    first = [SYSTEM, user("go")]
    answer = assistant("", "c1")
    resent = assistant("", "c1") | {"content": "  "}  # whitespace only: still the same answer
    one_off = call([*first, user("summarize so far")], assistant("summary"), 2, model="tiny", tools=False)
    calls = [call(first, answer, 1), one_off, call([*first, resent, tool("c1", "x")], assistant("done"), 3)]
    assert chains_of(calls) == [([1, 3], False), ([2], True)]


def test_previous_response_id_continues_a_stateful_conversation() -> None:
    first = [{"role": "system", "content": "inst"}, user("hi")]
    a1 = assistant("", "c1")
    calls = [
        call(first, a1, 1, response_id="resp_1"),
        # stateful: only the new input (and the instructions again), not the history
        call(
            [{"role": "system", "content": "inst"}, tool("c1", "out")],
            assistant("bye"),
            2,
            response_id="resp_2",
            previous_response_id="resp_1",
            leading_system=True,
        ),
    ]
    result = build_chains([c for c, _, _ in calls])
    assert [chain.calls for chain in result.chains] == [[0, 1]]
    expected = [*first, a1, tool("c1", "out")]
    assert result.keys[1] == tuple(message_key(m) for m in expected)
    assert result.deltas[1].label == "+2"


def test_delta_labels_follow_the_chain_not_the_task() -> None:
    first = [SYSTEM, user("a")]
    calls = [
        call(first, assistant("x"), 1),
        call([user("title please")], assistant("T"), 2, model="tiny", tools=False),
        call([*first, assistant("x"), user("b")], assistant("y"), 3),
        call([SYSTEM, user("summary")], assistant("z"), 4),
    ]
    result = build_chains([c for c, _, _ in calls])
    assert [d.label for d in result.deltas] == ["init 2", "init 1", "+2", "-3 +1"]


def test_merge_transcript_keeps_every_message_once_in_order() -> None:
    first = [SYSTEM, user("go")]
    a1 = assistant("", "c1")
    a1_resent = assistant("", "c1") | {"content": None, "reasoning_content": "dropped"}
    a2 = assistant("done")
    compacted = [SYSTEM, user("Summary: done")]
    failed = assistant("[call failed: timeout]") | {"is_error": True}
    steps = []
    for messages, answer in (
        (first, a1),
        ([*first, a1_resent, tool("c1", "x")], a2),
        (compacted, None),
        (compacted, assistant("again")),
    ):
        keys = tuple(message_key(m) for m in messages)
        shown = answer if answer is not None else failed
        steps.append((keys, messages, message_key(answer) if answer else None, shown))
    merged = merge_transcript(
        steps,
        resends=lambda answer, m: (
            m["role"] == "assistant" and bool(m.get("tool_calls")) == bool(answer.get("tool_calls"))
        ),
    )
    assert [(step, m["content"]) for step, m in merged] == [
        (0, "You are an agent."),
        (0, "go"),
        (0, ""),
        (1, "x"),
        (1, "done"),
        (2, "Summary: done"),
        (2, "[call failed: timeout]"),
        (3, "again"),
    ]


def test_a_compaction_keeping_only_the_system_prompt_continues_the_agent_loop() -> None:
    """Claude Code restarts from its system prompt and a summary; two title calls share only their
    instructions and stay apart (the agent's loop offers tools, a title call does not)."""
    title_system = {"role": "system", "content": "Write a title."}
    first = [SYSTEM, user("go")]
    calls = [
        call(first, assistant("", "c1"), 1),
        call([title_system, user("go")], assistant("Go"), 2, model="tiny", tools=False),
        call([*first, assistant("", "c1"), tool("c1", "x")], assistant("done"), 3),
        call([title_system, user("go on")], assistant("Going on"), 4, model="tiny", tools=False),
        call([SYSTEM, user("This session continues an earlier one. Summary: done")], assistant("ok"), 5),
    ]
    assert chains_of(calls) == [([1, 3, 5], False), ([2], True), ([4], True)]
