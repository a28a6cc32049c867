"""Normalised usage: each wire API's usage object, built with the provider's own SDK types where one
exists, gives the same partition (input, cache read, cache write, output, reasoning, total)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from exporter.core.usage import TOKEN_KEYS, TokenUsage, normalise_usage
from exporter.rollouts.rollout import Usage
from exporter.shared.wire import decode_body


def tokens(usage: TokenUsage) -> tuple[int | None, ...]:
    return tuple(usage.tokens().values())


def test_chat_completions_with_cache_and_reasoning() -> None:
    raw = CompletionUsage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1500,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1024, cache_write_tokens=100),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=256),
    ).model_dump(exclude_none=True)
    usage = normalise_usage(raw, "chat.completions")
    assert tokens(usage) == (76, 1024, 100, 300, 256, 1500)
    parts = (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens)
    assert sum(parts) == usage.total_tokens


def test_chat_completions_without_details_leaves_cache_and_reasoning_unknown() -> None:
    raw = CompletionUsage(prompt_tokens=11, completion_tokens=7, total_tokens=18).model_dump(
        exclude_none=True
    )
    assert tokens(normalise_usage(raw, "chat.completions")) == (11, None, None, 7, None, 18)
    assert tokens(normalise_usage(raw, "completions")) == (11, None, None, 7, None, 18)


def test_deepseek_cache_hit_tokens() -> None:
    raw = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "prompt_cache_hit_tokens": 64}
    assert tokens(normalise_usage(raw, "chat.completions")) == (36, 64, None, 5, None, 105)


def test_responses_with_cache_and_reasoning() -> None:
    raw = ResponseUsage(
        input_tokens=900,
        input_tokens_details=InputTokensDetails(cached_tokens=512, cache_write_tokens=128),
        output_tokens=120,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=64),
        total_tokens=1020,
    ).model_dump()
    assert tokens(normalise_usage(raw, "responses")) == (260, 512, 128, 120, 64, 1020)


def test_anthropic_messages_total_is_the_sum_it_reports() -> None:
    raw = AnthropicUsage(
        input_tokens=50,
        cache_creation_input_tokens=200,
        cache_read_input_tokens=1000,
        output_tokens=300,
        output_tokens_details={"thinking_tokens": 120},
    ).model_dump(exclude_none=True)
    assert tokens(normalise_usage(raw, "messages")) == (50, 1000, 200, 300, 120, 1550)


def test_anthropic_without_cache_fields() -> None:
    raw = AnthropicUsage(input_tokens=13, output_tokens=6).model_dump(exclude_none=True)
    assert tokens(normalise_usage(raw, "messages")) == (13, None, None, 6, None, 19)


def test_gemini_usage_metadata() -> None:
    # The REST shape of generateContent's usageMetadata (camelCase, as the wire carries it).
    raw = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 600,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 100,
        "toolUsePromptTokenCount": 10,
        "totalTokenCount": 1150,
    }
    usage = normalise_usage(raw, "gemini.generate_content")
    assert tokens(usage) == (410, 600, None, 140, 100, 1150)
    assert usage.input_tokens + usage.cache_read_tokens + usage.output_tokens == usage.total_tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, (3, None, None, 2, None, 5)),
        ({"input_tokens": 9, "output_tokens": 5, "total_tokens": 14}, (9, None, None, 5, None, 14)),
        ({"input_tokens": 13, "output_tokens": 6}, (13, None, None, 6, None, 19)),
        (
            {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
            (4, None, None, 2, None, 6),
        ),
    ],
)
def test_custom_api_is_told_by_its_keys(raw: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    assert tokens(normalise_usage(raw, "custom")) == expected
    assert tokens(normalise_usage(raw, None)) == expected


@pytest.mark.parametrize("raw", [None, {}, [], "12", 7])
def test_nothing_reported_is_all_null(raw: Any) -> None:
    usage = normalise_usage(raw, "chat.completions")
    assert not usage.reported
    assert set(usage.tokens().values()) == {None}


def test_hostile_values_become_null_not_errors() -> None:
    raw = {"prompt_tokens": "lots", "completion_tokens": float("inf"), "total_tokens": 2**70}
    assert tokens(normalise_usage(raw, "chat.completions")) == (None, None, None, None, None, None)


def test_sums_keep_unknown_counters_unknown() -> None:
    total = TokenUsage()
    total.add(normalise_usage({"input_tokens": 13, "output_tokens": 6}, "messages"))
    total.add(
        normalise_usage({"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}, "chat.completions")
    )
    assert tokens(total) == (23, None, None, 7, None, 30)


def test_rollout_usage_adds_normalised_usage_and_keeps_cost() -> None:
    usage = Usage(cost_usd=0.5)
    usage.add(normalise_usage({"input_tokens": 13, "output_tokens": 6}, "messages"))
    usage.add(Usage(input_tokens=1, cost_usd=0.25))
    assert usage.as_row()["input_tokens"] == 14
    assert usage.as_row()["cost_usd"] == 0.75


def test_decoded_response_carries_normalised_tokens() -> None:
    body = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 2},
    }
    assert tokens(decode_body(body).tokens) == (3, 7, None, 2, None, 12)


counters = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))


@given(prompt=counters, cached=counters, completion=counters, reasoning=counters)
def test_chat_partition_is_additive(
    prompt: int | None, cached: int | None, completion: int | None, reasoning: int | None
) -> None:
    raw: dict[str, Any] = {}
    if prompt is not None:
        raw["prompt_tokens"] = prompt
    if completion is not None:
        raw["completion_tokens"] = completion
    if prompt is not None and completion is not None:
        raw["total_tokens"] = prompt + completion
    if cached is not None:
        raw["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        raw["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    usage = normalise_usage(raw, "chat.completions")
    assert usage.cache_read_tokens == cached and usage.reasoning_tokens == reasoning
    assert (usage.input_tokens is None) == (prompt is None)
    if usage.total_tokens is not None:
        assert usage.input_tokens + (usage.cache_read_tokens or 0) + usage.output_tokens == usage.total_tokens


def test_token_keys_are_the_fields() -> None:
    assert tuple(item.name for item in fields(TokenUsage)) == TOKEN_KEYS
