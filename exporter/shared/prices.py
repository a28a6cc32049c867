"""Cost, only from prices the user can see: a TOML price table (`--prices FILE`, else the shipped
estimate in exporter/shared/prices.toml). No network lookups, ever.

    [table]                       # optional: says where the numbers come from
    name = "my negotiated prices"
    as_of = "2025-11-01"
    estimate = false

    [models."gpt-4o"]             # USD per million tokens
    input = 2.50                  # required
    output = 10.00                # required
    cached_input = 1.25           # cache reads; optional
    cache_write = 3.125           # cache writes; optional

A model's price is found by, in order: its exact name; the name after a provider prefix
(`openai/gpt-4o` → `gpt-4o`); either without a date suffix (`gpt-4o-2024-08-06` → `gpt-4o`); then
the `*` patterns, the longest first. Names compare case-insensitively. A call costs nothing known
("no price", never 0) when its model has no price, or when it used a token kind (cache reads or
writes) the model's row does not price.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.core.errors import UserError
from exporter.core.usage import TokenUsage

DEFAULT_PRICES = "prices.toml"
PRICES_ENV = "AGENTCAP_PRICES"
PER_TOKENS = 1_000_000
PRICE_KEYS = ("input", "output", "cached_input", "cache_write")
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
HELP = "see docs/stats.md#prices for the format"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of each kind; None: this kind has no price."""

    key: str
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: TokenUsage) -> float | None:
        """The call's cost in USD; None when it used a kind of token this row does not price."""
        parts = (
            (usage.input_tokens, self.input),
            (usage.output_tokens, self.output),
            (usage.cache_read_tokens, self.cached_input),
            (usage.cache_write_tokens, self.cache_write),
        )
        if not usage.reported or any(count and price is None for count, price in parts):
            return None
        return sum((count or 0) * (price or 0.0) for count, price in parts) / PER_TOKENS


@dataclass(frozen=True)
class PriceTable:
    source: str  # the file, or "agentcap default prices"
    as_of: str | None
    estimate: bool
    models: tuple[ModelPrice, ...]

    def describe(self) -> str:
        """One line for reports: where the prices come from and how far to trust them."""
        dated = f" as of {self.as_of}" if self.as_of else ""
        return f"{self.source}{dated}" + (" (an estimate)" if self.estimate else "")

    def price(self, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        exact = {price.key.casefold(): price for price in self.models if "*" not in price.key}
        name = model.casefold()
        bare = name.rsplit("/", 1)[-1]
        for candidate in (name, bare, _DATE_SUFFIX.sub("", name), _DATE_SUFFIX.sub("", bare)):
            if candidate in exact:
                return exact[candidate]
        patterns = sorted(
            (p for p in self.models if "*" in p.key), key=lambda p: -len(p.key.replace("*", ""))
        )
        return next(
            (
                p
                for p in patterns
                if fnmatchcase(name, p.key.casefold()) or fnmatchcase(bare, p.key.casefold())
            ),
            None,
        )

    def cost(self, model: str | None, usage: TokenUsage) -> float | None:
        price = self.price(model)
        return None if price is None else price.cost(usage)


@cache
def env_prices() -> PriceTable:
    """The table named by $AGENTCAP_PRICES, else the shipped one: for views without a --prices flag."""
    named = os.environ.get(PRICES_ENV)
    return load_prices(Path(named) if named else None)


def load_prices(path: Path | None = None) -> PriceTable:
    """The table in `path`, or the shipped default table; a bad file is a one-line UserError."""
    if path is None:
        text = resources.files("exporter.shared").joinpath(DEFAULT_PRICES).read_text(encoding="utf-8")
        return parse_prices(text, source="agentcap default prices")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"price table {path}: cannot read it ({error}); {HELP}") from error
    return parse_prices(text, source=str(path))


def parse_prices(text: str, *, source: str) -> PriceTable:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{source}: not TOML ({error}); {HELP}") from error
    table = document.get("table", {})
    models = document.get("models")
    if not isinstance(table, dict) or not isinstance(models, dict) or not models:
        raise UserError(f'{source}: no [models."NAME"] entries; {HELP}')
    return PriceTable(
        source=str(table.get("name") or source),
        as_of=str(table["as_of"]) if "as_of" in table else None,
        estimate=table.get("estimate") is True,
        models=tuple(_model_price(source, key, value) for key, value in models.items()),
    )


def _model_price(source: str, key: str, value: Any) -> ModelPrice:
    where = f'{source}: [models."{key}"]'
    if not isinstance(value, dict):
        raise UserError(f"{where} is not a table; {HELP}")
    unknown = sorted(set(value) - set(PRICE_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(PRICE_KEYS)})")
    prices: dict[str, float | None] = {}
    for name in PRICE_KEYS:
        price = value.get(name)
        if price is None and name in ("input", "output"):
            raise UserError(f"{where}: `{name}` is required (USD per million tokens); {HELP}")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            raise UserError(
                f"{where}: `{name}` must be a number >= 0 (USD per million tokens), not {price!r}"
            )
        prices[name] = None if price is None else float(price)
    return ModelPrice(
        key=key,
        input=prices["input"] or 0.0,
        output=prices["output"] or 0.0,
        cached_input=prices["cached_input"],
        cache_write=prices["cache_write"],
    )
