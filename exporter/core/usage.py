"""Token usage, normalised: one shape for what every wire API reports about a call. Pure, no I/O.

Each API counts differently (OpenAI's prompt includes cached tokens, Anthropic's input excludes
them, Gemini counts thinking apart from the answer), so every reader (the parquet columns, `ls`,
`stats`, `inspect`, the report, rollouts) goes through `normalise_usage` and gets the same
partition of a call's tokens:

    input_tokens        input billed at the full price: the prompt minus what was read from or
                        written to the provider's cache
    cache_read_tokens   input read from the cache
    cache_write_tokens  input written to the cache (Anthropic's cache creation, OpenAI's cache writes)
    output_tokens       everything the model generated, reasoning included
    reasoning_tokens    the part of output_tokens spent reasoning (already counted in output)
    total_tokens        input + cache read + cache write + output

A counter is None when the provider did not report it; nothing is ever guessed. The one derived
value is Anthropic's total, which it does not send: the sum of the four counters it does send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from exporter.core.values import as_dict, as_int

TOKEN_KEYS: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)


@dataclass(slots=True)
class TokenUsage:
    """A call's tokens (or a sum of calls'); None: not reported."""

    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None

    def add(self, other: TokenUsage) -> None:
        """Add `other`'s counters; a counter stays None only while no addend reported it."""
        for item in fields(other):
            theirs = getattr(other, item.name)
            if theirs is not None and hasattr(self, item.name):
                mine = getattr(self, item.name)
                setattr(self, item.name, theirs if mine is None else mine + theirs)

    def tokens(self) -> dict[str, int | None]:
        return {key: getattr(self, key) for key in TOKEN_KEYS}

    @property
    def reported(self) -> bool:
        return any(getattr(self, key) is not None for key in TOKEN_KEYS)


def _minus(value: int | None, *parts: int | None) -> int | None:
    return None if value is None else value - sum(part or 0 for part in parts)


def _sum(*values: int | None) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def chat_usage(raw: dict[str, Any]) -> TokenUsage:
    """Chat completions and legacy completions: `prompt_tokens` includes the tokens read from and
    written to the cache (`prompt_tokens_details`). DeepSeek reports its cache reads as
    `prompt_cache_hit_tokens` instead."""
    details = as_dict(raw.get("prompt_tokens_details"))
    cached = as_int(details.get("cached_tokens"))
    if cached is None:
        cached = as_int(raw.get("prompt_cache_hit_tokens"))
    written = as_int(details.get("cache_write_tokens"))
    return TokenUsage(
        input_tokens=_minus(as_int(raw.get("prompt_tokens")), cached, written),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=as_int(raw.get("completion_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")),
        total_tokens=as_int(raw.get("total_tokens")),
    )


def responses_usage(raw: dict[str, Any]) -> TokenUsage:
    """The Responses API: `input_tokens` includes the cache reads and writes (`input_tokens_details`)."""
    details = as_dict(raw.get("input_tokens_details"))
    cached = as_int(details.get("cached_tokens"))
    written = as_int(details.get("cache_write_tokens"))
    return TokenUsage(
        input_tokens=_minus(as_int(raw.get("input_tokens")), cached, written),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=as_int(raw.get("output_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("reasoning_tokens")),
        total_tokens=as_int(raw.get("total_tokens")),
    )


def messages_usage(raw: dict[str, Any]) -> TokenUsage:
    """Anthropic Messages: `input_tokens` already excludes the cache; thinking is inside
    `output_tokens` (broken out in `output_tokens_details.thinking_tokens`); no total is sent."""
    usage = TokenUsage(
        input_tokens=as_int(raw.get("input_tokens")),
        cache_read_tokens=as_int(raw.get("cache_read_input_tokens")),
        cache_write_tokens=as_int(raw.get("cache_creation_input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("thinking_tokens")),
    )
    if usage.input_tokens is not None and usage.output_tokens is not None:
        usage.total_tokens = _sum(
            usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens
        )
    return usage


def gemini_usage(raw: dict[str, Any]) -> TokenUsage:
    """Gemini `usageMetadata`: the prompt includes cached content; thoughts are counted apart from
    the candidates, so output is their sum. Tool-use prompt tokens are input."""
    cached = as_int(raw.get("cachedContentTokenCount"))
    thoughts = as_int(raw.get("thoughtsTokenCount"))
    prompt = _sum(as_int(raw.get("promptTokenCount")), as_int(raw.get("toolUsePromptTokenCount")))
    return TokenUsage(
        input_tokens=_minus(prompt, cached),
        cache_read_tokens=cached,
        output_tokens=_sum(as_int(raw.get("candidatesTokenCount")), thoughts),
        reasoning_tokens=thoughts,
        total_tokens=as_int(raw.get("totalTokenCount")),
    )


# The `api` values of capture records (docs/capture-format.md) → their usage reader.
USAGE_READERS: dict[str, Callable[[dict[str, Any]], TokenUsage]] = {
    "chat.completions": chat_usage,
    "completions": chat_usage,
    "responses": responses_usage,
    "messages": messages_usage,
    "gemini.generate_content": gemini_usage,
}


def usage_reader(raw: dict[str, Any]) -> Callable[[dict[str, Any]], TokenUsage]:
    """The reader for a usage object whose API is unknown (a `custom` call), told by its keys."""
    if "prompt_tokens" in raw or "completion_tokens" in raw:
        return chat_usage
    if "promptTokenCount" in raw or "totalTokenCount" in raw or "candidatesTokenCount" in raw:
        return gemini_usage
    if "total_tokens" in raw or "input_tokens_details" in raw or "output_tokens_details" in raw:
        return responses_usage
    return messages_usage


def normalise_usage(raw: Any, api: str | None = None) -> TokenUsage:
    """A provider's usage object (as the capture record keeps it) in the normalised shape.

    `api` is the record's `api`; for `custom`, None or an API we do not know, the keys decide.
    Anything that is not an object gives an all-None usage.
    """
    if not isinstance(raw, dict) or not raw:
        return TokenUsage()
    reader = USAGE_READERS.get(api or "") or usage_reader(raw)
    return reader(raw)
