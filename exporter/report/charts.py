"""Small inline SVG charts: no script, no library, readable with JavaScript off.

Each series is one `<path>` of bars, so a 1,000-call chart is four elements, not four thousand.
"""

from __future__ import annotations

from html import escape

from exporter.inspect.calls import Call
from exporter.shared import totals_display as display

WIDTH, HEIGHT, MARGIN = 720, 160, 48
SERIES = (  # (normalised counter, legend label, CSS class)
    ("input_tokens", "input", "s-input"),
    ("cache_read_tokens", "cache read", "s-cache-read"),
    ("cache_write_tokens", "cache write", "s-cache-write"),
    ("output_tokens", "output", "s-output"),
)
BINS = 20


def _frame(title: str, body: str, legend: list[tuple[str, str]], y_label: str, x_label: str) -> str:
    keys = "".join(f'<span class="key"><i class="{css}"></i>{escape(label)}</span>' for label, css in legend)
    return (
        f'<figure class="chart"><figcaption>{escape(title)} {keys}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT + MARGIN}" role="img" aria-label="{escape(title)}">'
        f'<line class="axis" x1="{MARGIN}" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>'
        f'<line class="axis" x1="{MARGIN}" y1="0" x2="{MARGIN}" y2="{HEIGHT}"/>'
        f'<text x="{MARGIN - 4}" y="10" text-anchor="end">{escape(y_label)}</text>'
        f'<text x="{WIDTH}" y="{HEIGHT + 24}" text-anchor="end">{escape(x_label)}</text>'
        f"{body}</svg></figure>"
    )


def tokens_per_call(calls: list[Call]) -> str:
    """Stacked bars of each call's tokens, in arrival order (a run's calls left to right)."""
    stacks = [[getattr(call.tokens, key) or 0 for key, _, _ in SERIES] for call in calls]
    peak = max((sum(stack) for stack in stacks), default=0)
    if not calls or peak == 0:
        return '<p class="empty">no token usage reported</p>'
    step = (WIDTH - MARGIN) / len(calls)
    bar = max(step * 0.8, 0.5)
    paths: list[list[str]] = [[] for _ in SERIES]
    for index, stack in enumerate(stacks):
        x = MARGIN + index * step
        base = float(HEIGHT)
        for series, value in enumerate(stack):
            if value:
                height = value / peak * (HEIGHT - 12)
                base -= height
                paths[series].append(f"M{x:.2f} {base:.2f}h{bar:.2f}v{height:.2f}h{-bar:.2f}z")
    body = "".join(
        f'<path class="{css}" d="{"".join(path)}"><title>{escape(label)}</title></path>'
        for (_, label, css), path in zip(SERIES, paths, strict=True)
        if path
    )
    return _frame(
        f"tokens per call ({len(calls)} calls, peak {display.tokens(peak)})",
        body,
        [(label, css) for _, label, css in SERIES],
        display.tokens(peak),
        "calls in arrival order →",
    )


def latency_histogram(calls: list[Call]) -> str:
    """How many calls took how long (total duration), in equal bins up to the slowest."""
    durations = [call.duration_ms for call in calls if call.duration_ms is not None]
    if not durations:
        return '<p class="empty">no latency recorded</p>'
    top = max(durations) or 1.0
    counts = [0] * BINS
    for value in durations:
        counts[min(int(value / top * BINS), BINS - 1)] += 1
    tallest = max(counts)
    step = (WIDTH - MARGIN) / BINS
    bars = []
    for index, count in enumerate(counts):
        if count:
            height = count / tallest * (HEIGHT - 12)
            low, high = index * top / BINS, (index + 1) * top / BINS
            bars.append(
                f'<rect class="s-latency" x="{MARGIN + index * step + 1:.2f}" y="{HEIGHT - height:.2f}" '
                f'width="{step - 2:.2f}" height="{height:.2f}"><title>{count} call(s) '
                f"{display.millis(low)}–{display.millis(high)}</title></rect>"
            )
    ticks = "".join(
        f'<text x="{MARGIN + i * (WIDTH - MARGIN) / 4:.2f}" y="{HEIGHT + 14}" '
        f'text-anchor="{"end" if i == 4 else "middle"}">{display.millis(top * i / 4)}</text>'
        for i in range(5)
    )
    return _frame(
        f"latency ({len(durations)} calls)",
        "".join(bars) + ticks,
        [("calls", "s-latency")],
        str(tallest),
        "",
    )
