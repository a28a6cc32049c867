"""Prices: the documented TOML format, the shipped estimate, matching rules, and "no price" (never 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.core.errors import UserError
from exporter.core.usage import TokenUsage, normalise_usage
from exporter.shared.prices import load_prices, parse_prices

TABLE = """
[table]
name = "team prices"
as_of = "2025-11-01"

[models."gpt-4o"]
input = 2.50
cached_input = 1.25
output = 10.00

[models."claude-sonnet-4*"]
input = 3.00
cached_input = 0.30
cache_write = 3.75
output = 15.00

[models."claude-*"]
input = 100
output = 100

[models."local-model"]
input = 0
output = 0
"""


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(TABLE)
    return path


def test_cost_of_a_call_with_cache_reads(table_file: Path) -> None:
    prices = load_prices(table_file)
    usage = normalise_usage(
        {"prompt_tokens": 2000, "completion_tokens": 100, "total_tokens": 2100,
         "prompt_tokens_details": {"cached_tokens": 1000}},
        "chat.completions",
    )  # fmt: skip
    # 1000 full-price input + 1000 cached + 100 output
    assert prices.cost("gpt-4o", usage) == pytest.approx((1000 * 2.5 + 1000 * 1.25 + 100 * 10) / 1e6)
    assert prices.describe() == "team prices as of 2025-11-01"


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4*"),  # the longest pattern wins
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4*"),
        ("claude-3-haiku", "claude-*"),
        ("gpt-4o-mini", None),  # not a date suffix: another model
        ("gpt-test", None),
        (None, None),
    ],
)
def test_matching_rules(table_file: Path, model: str | None, key: str | None) -> None:
    price = load_prices(table_file).price(model)
    assert (price.key if price else None) == key


def test_unknown_model_has_no_price_never_zero(table_file: Path) -> None:
    prices = load_prices(table_file)
    usage = TokenUsage(input_tokens=10, output_tokens=5, total_tokens=15)
    assert prices.cost("mystery-model", usage) is None
    assert prices.cost("local-model", usage) == 0.0  # listed as free: that is a price


def test_a_token_kind_without_a_price_leaves_the_call_unpriced(table_file: Path) -> None:
    usage = TokenUsage(input_tokens=10, cache_write_tokens=50, output_tokens=5)
    assert load_prices(table_file).cost("gpt-4o", usage) is None  # gpt-4o's row has no cache_write
    assert load_prices(table_file).cost("claude-sonnet-4", usage) == pytest.approx(
        (10 * 3 + 50 * 3.75 + 5 * 15) / 1e6
    )


def test_a_call_without_usage_has_no_cost(table_file: Path) -> None:
    assert load_prices(table_file).cost("gpt-4o", TokenUsage()) is None


def test_shipped_default_is_dated_and_an_estimate() -> None:
    prices = load_prices()
    assert prices.estimate and prices.as_of
    assert "estimate" in prices.describe()
    assert prices.price("gpt-4o") is not None and prices.price("claude-sonnet-4-20250514") is not None
    assert prices.price("fake-model") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "not TOML"),
        ("[table]\nname = 'x'\n", "no [models"),
        ('[models."m"]\ninput = 1\n', "`output` is required"),
        ('[models."m"]\ninput = 1\noutput = -2\n', "must be a number >= 0"),
        ('[models."m"]\ninput = 1\noutput = "3"\n', "must be a number >= 0"),
        ('[models."m"]\ninput = 1\noutput = 2\ncached = 1\n', "unknown key(s) cached"),
        ("[models]\nm = 3\n", "is not a table"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as raised:
        load_prices(path)
    assert message in raised.value.message
    assert "\n" not in raised.value.message
    assert str(path) in raised.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read it"):
        load_prices(tmp_path / "nope.toml")


def test_parse_is_the_documented_format() -> None:
    # The example in the module docstring (and docs/stats.md) parses as documented.
    prices = parse_prices('[models."gpt-4o"]\ninput = 2.50\noutput = 10.00\n', source="example")
    assert prices.source == "example" and not prices.estimate and prices.as_of is None
