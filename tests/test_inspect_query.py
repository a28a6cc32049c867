"""The picker's filter (fzf syntax, smart case, char-aware spans) and the message delta labels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.chains import delta, message_key
from exporter.inspect.query import Query

LINE = "assistant→read_file  Fix the tests\ntool: README says 日本"
MATCH_CASES = [
    ("", True),
    ("rdfl", True),  # fuzzy: r-e-a-d-_-f-i-l-e within one line
    ("frd", False),  # fuzzy letters out of order
    ("asstool", False),  # fuzzy never spans lines
    ("'tests", True),
    ("'tsts", False),  # exact does not fuzz
    ("^tool", True),
    ("^fix", False),
    ("日本$", True),
    ("^tool: README says 日本$", True),
    ("!readme", False),
    ("!'docs", True),
    ("README", True),
    ("ReadMe", False),  # an uppercase letter makes the term case-sensitive
    ("'nope | 'tests", True),
    ("'nope | 'nada", False),
    ("'fix 'tool !zzz", True),
    ("'fix 'zzz", False),
    ("says\\ 日", True),  # escaped space stays in the term
]


@pytest.mark.parametrize(("query", "expected"), MATCH_CASES, ids=[c[0] or "empty" for c in MATCH_CASES])
def test_query_matches(query: str, expected: bool) -> None:
    assert Query.parse(query).matches(LINE) is expected


def test_spans_are_character_offsets_into_the_original_text() -> None:
    # "İ" lowercases to two characters: offsets from a lowercased copy would be off by one after it.
    text = "İstanbul café — İSTANBUL Café"
    spans = Query.parse("café").spans(text)
    assert [text[start:end] for start, end in spans] == ["café", "Café"]
    spans = Query.parse("'bul").spans(text)
    assert [text[start:end] for start, end in spans] == ["bul", "BUL"]


def test_fuzzy_spans_mark_the_matched_letters_and_merge() -> None:
    text = "read_file"
    assert [text[s:e] for s, e in Query.parse("rdfl").spans(text)] == ["r", "d", "f", "l"]
    assert [text[s:e] for s, e in Query.parse("read fil").spans(text)] == ["read", "fil"]
    assert Query.parse("!read").spans(text) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=200))
def test_any_query_on_any_text_is_safe(query: str, text: str) -> None:
    parsed = Query.parse(query)
    for start, end in parsed.spans(text):
        assert 0 <= start < end <= len(text)


def test_fuzzy_is_linear_on_long_near_misses() -> None:
    import time

    started = time.perf_counter()
    assert not Query.parse("abcdefghz").matches("abcdefgh" * 20_000)
    assert time.perf_counter() - started < 0.5


def keys(*contents: str) -> tuple[bytes, ...]:
    return tuple(message_key({"role": "user", "content": c}) for c in contents)


@pytest.mark.parametrize(
    ("previous", "current", "label"),
    [
        (None, keys("a", "b", "c"), "init 3"),
        (keys("a"), keys("a", "b", "c"), "+2"),
        (keys("a", "b"), keys("a", "b"), "+0"),
        (keys("a", "b", "c"), keys("a", "x"), "-2 +1"),
        (keys("a", "b"), keys("s"), "-2 +1"),
    ],
)
def test_delta_labels(previous: tuple | None, current: tuple, label: str) -> None:
    assert delta(previous, current).label == label


def test_message_key_ignores_bookkeeping_and_key_order() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    reordered = {"function": {"arguments": "{}", "name": "f"}, "type": "function", "id": "c"}
    plain = {"role": "assistant", "content": None, "tool_calls": [call]}
    noisy = {
        "role": "assistant",
        "content": "",
        "tool_calls": [reordered],
        "name": "x",
        "reasoning_content": "r",
    }
    assert message_key(plain) == message_key(noisy)
    assert message_key(plain) != message_key({**plain, "tool_calls": [{**call, "id": "d"}]})
