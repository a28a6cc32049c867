"""How totals read, the same in `stats`, `ls -l`, `inspect` and the report."""

from __future__ import annotations

from exporter.shared.totals import Totals


def tokens(count: int | None) -> str:
    """`1,234`, `12.3k`, `4.56M`; `-` when nothing was reported."""
    if count is None:
        return "-"
    if abs(count) < 10_000:
        return f"{count:,}"
    if abs(count) < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.2f}M"


def usd(amount: float) -> str:
    if amount == 0:
        return "$0"
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def cost(totals: Totals) -> str:
    """`$1.23`, `$1.23 +2 no price`, `no price`, or `-` when no call reported tokens."""
    if totals.cost_usd is None:
        return "no price" if totals.unpriced else "-"
    return usd(totals.cost_usd) + (f" +{totals.unpriced} no price" if totals.unpriced else "")


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


TOTALS_HEADINGS = (
    "calls",
    "failed",
    "input",
    "cache read",
    "cache write",
    "output",
    "reasoning",
    "total",
    "cost",
    "p50",
    "p95",
)
"""The columns of a totals row wherever one is shown (`stats` tables, the report's tables)."""


def totals_cells(totals: Totals) -> list[str]:
    """A totals row's cells, in TOTALS_HEADINGS order."""
    usage = totals.usage
    return [
        str(totals.calls),
        str(totals.failed),
        *(
            tokens(count)
            for count in (
                usage.input_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.output_tokens,
                usage.reasoning_tokens,
                usage.total_tokens,
            )
        ),
        cost(totals),
        millis(totals.p50_ms),
        millis(totals.p95_ms),
    ]


def token_summary(totals: Totals) -> str:
    """One line: `in 1.2k (cache read 800, write 50) · out 300 (reasoning 120) · total 2.3k`."""
    usage = totals.usage
    if not usage.reported:
        return "no usage reported"
    cache = [
        f"{label} {tokens(count)}"
        for label, count in (("cache read", usage.cache_read_tokens), ("write", usage.cache_write_tokens))
        if count
    ]
    parts = [f"in {tokens(usage.input_tokens)}" + (f" ({', '.join(cache)})" if cache else "")]
    reasoning = f" (reasoning {tokens(usage.reasoning_tokens)})" if usage.reasoning_tokens else ""
    parts.append(f"out {tokens(usage.output_tokens)}{reasoning}")
    parts.append(f"total {tokens(usage.total_tokens)}")
    return " · ".join(parts)
