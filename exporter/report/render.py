"""The report as one self-contained HTML file: CSS and JS inline, nothing fetched, readable without JS.

Without JavaScript every task is a native `<details>` (click to open) and every call is plain
HTML; with it, a search box filters calls (opening the tasks that match) and buttons open or close
everything. A Content-Security-Policy forbids loading anything, so a message that contains markup
can neither run nor reach the network (it is escaped anyway).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

from exporter import __version__
from exporter.core.values import content_text
from exporter.inspect.calls import Call
from exporter.inspect.rows import pretty_arguments, when
from exporter.report import charts
from exporter.report.model import Report, Section
from exporter.shared import totals_display as display
from exporter.shared.tables import human_bytes
from exporter.shared.totals import Totals, iso
from exporter.shared.wire import DecodedResponse, ToolCall

TEXT_LIMIT = 4000  # characters of one message shown; the rest is cut, its size said
PREVIEW_CHARS = 140
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _asset(name: str) -> str:
    return resources.files("exporter.report").joinpath(name).read_text(encoding="utf-8")


def render(report: Report, *, scan_note: str) -> str:
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>agentcap report: {escape(report.title)}</title>",
        f"<style>{_asset('report.css')}</style></head><body>",
        '<header class="top">',
        f"<h1>agentcap report <span>{escape(report.title)}</span></h1>",
        f'<p class="meta">generated {generated} by agentcap {escape(__version__)} · '
        f"prices: {escape(report.prices.describe())} · {escape(scan_note)}</p>",
        "</header>",
        _summary(report),
        _toolbar(len(report.calls)),
        "<main>",
        *(_section(report, section) for section in report.sections),
        "</main>",
        f"<script>{_asset('report.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- summary


def _card(label: str, value: str, note: str = "", *, warn: bool = False) -> str:
    css = "card warn" if warn else "card"
    small = f"<small>{escape(note)}</small>" if note else ""
    return f'<div class="{css}"><span>{escape(label)}</span><b>{escape(value)}</b>{small}</div>'


def _summary(report: Report) -> str:
    total = report.total
    usage = total.usage
    span = f"{iso(total.first_at)} → {iso(total.last_at)}" if total.first_at is not None else ""
    cache = ", ".join(
        f"{label} {display.tokens(count)}"
        for label, count in (
            ("cache read", usage.cache_read_tokens),
            ("cache write", usage.cache_write_tokens),
        )
        if count
    )
    reasoning = f"reasoning {display.tokens(usage.reasoning_tokens)}" if usage.reasoning_tokens else ""
    cards = [
        _card("calls", str(total.calls), f"{len(total.runs)} run(s), {len(report.sections)} task(s)"),
        _card("failed", str(total.failed), warn=total.failed > 0),
        _card("input tokens", display.tokens(usage.input_tokens), cache),
        _card("output tokens", display.tokens(usage.output_tokens), reasoning),
        _card("total tokens", display.tokens(usage.total_tokens)),
        _card(
            "cost", display.cost(total), "estimate" if report.prices.estimate else "", warn=total.unpriced > 0
        ),
        _card("latency p50", display.millis(total.p50_ms)),
        _card("latency p95", display.millis(total.p95_ms)),
    ]
    findings = sum(len(call.findings) for call in report.calls)
    if findings:
        cards.append(_card("scan findings", str(findings), "masked below", warn=True))
    return (
        '<section id="summary">'
        f'<p class="span">{escape(span)}</p>'
        f'<div class="cards">{"".join(cards)}</div>'
        f'<div class="charts">{charts.tokens_per_call(report.calls)}{charts.latency_histogram(report.calls)}</div>'
        f"{_totals_table('per model', 'model', sorted(report.models.items()))}"
        f"{_task_index(report)}"
        "</section>"
    )


def _totals_cells(totals: Totals) -> str:
    return "".join(f'<td class="n">{escape(value)}</td>' for value in display.totals_cells(totals))


def _totals_table(title: str, key: str, rows: list[tuple[str, Totals]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in (key, *display.TOTALS_HEADINGS))
    body = "".join(f"<tr><td>{escape(name or '-')}</td>{_totals_cells(totals)}</tr>" for name, totals in rows)
    return f'<details class="table" open><summary>{escape(title)}</summary><table><tr>{head}</tr>{body}</table></details>'


def _task_index(report: Report) -> str:
    head = "".join(
        f"<th>{escape(name)}</th>"
        for name in ("run", "conversation", "first prompt", *display.TOTALS_HEADINGS)
    )
    rows = []
    for section in report.sections:
        css = ' class="failed"' if section.totals.failed else ""
        rows.append(
            f"<tr{css}><td>{escape(section.run_id)}</td>"
            f'<td><a href="#{escape(section.anchor)}">{escape(section.title)}</a></td>'
            f"<td>{escape(_first_prompt(section))}</td>{_totals_cells(section.totals)}</tr>"
        )
    return (
        f'<details class="table" open><summary>per conversation</summary><table><tr>{head}</tr>{"".join(rows)}'
        "</table></details>"
    )


def _first_prompt(section: Section) -> str:
    for message in section.calls[0].messages:
        if message.get("role") == "user":
            return _one_line(content_text(message.get("content")))
    return ""


def _one_line(text: str, limit: int = PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _toolbar(calls: int) -> str:
    # Hidden until the script runs: without JavaScript these controls could do nothing.
    return (
        '<div id="toolbar" hidden>'
        '<input id="search" type="search" placeholder="Search calls: text, tool, model, request id…" '
        'autocomplete="off" aria-label="search calls">'
        f'<span id="count">{calls} calls</span>'
        '<button type="button" id="expand">open all</button>'
        '<button type="button" id="collapse">close all</button>'
        "</div>"
    )


# ---------------------------------------------------------------- sections and calls


def _section(report: Report, section: Section) -> str:
    totals = section.totals
    failed = f' · <b class="bad">{totals.failed} failed</b>' if totals.failed else ""
    cost = f"{escape(display.cost(totals))} · " if totals.usage.reported else ""
    summary = (
        f'<summary><span class="run">{escape(section.run_id)}</span> '
        f"<b>{escape(section.title)}</b> · {totals.calls} calls{failed} · "
        f"{escape(display.token_summary(totals))} · {cost}"
        f'<span class="prompt">{escape(_first_prompt(section))}</span></summary>'
    )
    calls = "".join(_call(report, call) for call in section.calls)
    return f'<details class="task" id="{escape(section.anchor)}">{summary}{calls}</details>'


def _call(report: Report, call: Call) -> str:
    css = "call failed" if call.failed else "call"
    if call.findings:
        css += " finding"
    cost = report.costs.get(call.request_id)
    usage = call.tokens
    tokens = (
        f"in {display.tokens(usage.input_tokens)} · out {display.tokens(usage.output_tokens)}"
        if usage.reported
        else "no usage"
    )
    head = [
        f'<a class="loc" href="#call-{escape(call.request_id)}">#{call.index}</a>',
        f'<code class="rid" title="{escape(call.request_id)}">{escape(call.short_id)}</code>',
        f'<span class="status">{escape(call.status)}</span>',
        f'<span class="delta" title="messages against the previous call of this conversation">{escape(call.change.label)}</span>',
        f'<span class="model">{escape(call.model)}</span>',
        f"<span>{escape(tokens)}</span>",
        f"<span>{escape(display.usd(cost) if cost is not None else 'no price' if usage.reported else '')}</span>",
        f"<span>{escape(display.millis(call.duration_ms))}</span>",
        f"<time>{escape(when(call.captured_at))}</time>",
    ]
    body = [
        f"<header>{' '.join(head)}</header>",
        _details(call),
        _findings(call),
        _messages(report, call),
        _response(report, call),
    ]
    return f'<article class="{css}" id="call-{escape(call.request_id)}">{"".join(body)}</article>'


def _details(call: Call) -> str:
    redacted = call.redacted_headers
    parts = [
        f"request {escape(_size(call.request_size))}",
        f"response {escape(_size(call.response_size))}",
        f"api {escape(call.api or '?')}{', streamed' if call.stream else ''}",
        f"seq {call.seq if call.seq is not None else '-'}",
        f"turn {call.turn if call.turn is not None else '-'}",
        "redacted headers: "
        + escape("(not kept in parquet)" if redacted is None else ", ".join(redacted) or "none"),
    ]
    if call.error:
        parts.append(
            f'<b class="bad">{escape(str(call.error.get("kind", "error")))}: '
            f"{escape(str(call.error.get('message', '')))}</b>"
        )
    return f'<p class="details">{" · ".join(parts)}</p>'


def _size(size: int | None) -> str:
    return "-" if size is None else human_bytes(size)


def _findings(call: Call) -> str:
    if not call.findings:
        return ""
    items = "".join(
        f"<li><b>{escape(str(finding.get('detector', '?')))}</b> {escape(str(finding.get('status', '?')))} "
        f"<code>{escape(str(finding.get('preview', '')))}</code> "
        f"at {escape(str(finding.get('file', '?')))}:{escape(str(finding.get('line', '?')))} (this call)</li>"
        for finding in call.findings
    )
    return f'<ul class="findings">{items}</ul>'


def _messages(report: Report, call: Call) -> str:
    messages = call.messages
    change = call.change
    new = messages[change.kept :]
    if change.first:
        note = f"{len(messages)} message(s), the first call of this conversation"
    elif change.removed:
        note = (
            f"the last {change.removed} of the previous call's messages were replaced by {change.added} "
            f"(kept the first {change.kept})"
        )
    else:
        note = f"{change.kept} earlier message(s) as in its previous call, then {change.added} new"
    blocks = "".join(_message(report, call, message) for message in new)
    return f'<section class="messages"><p class="note">{escape(note)}</p>{blocks}</section>'


def _message(report: Report, call: Call, message: dict[str, Any]) -> str:
    role = str(message.get("role") or "?")
    parts = [f'<div class="role">{escape(role)}</div>']
    if message.get("reasoning_content"):
        parts.append(_reasoning(str(message["reasoning_content"])))
    text = content_text(message.get("content"))
    if role == "tool":
        parts.append(_result_origin(report, call, str(message.get("tool_call_id") or "")))
    if text.strip():
        parts.append(_text(text))
    for tool_call in message.get("tool_calls") or []:
        if isinstance(tool_call, dict):
            parts.append(_tool_call(report, call, ToolCall.from_openai(tool_call), stitched=False))
    return f'<div class="msg role-{escape(role)}">{"".join(parts)}</div>'


def _result_origin(report: Report, call: Call, call_id: str) -> str:
    origin = report.origins.get((call.run_id or "", call_id))
    if origin is None:
        return f'<p class="stitch">result of tool call <code>{escape(call_id)}</code></p>'
    made_by, tool_call = origin
    return (
        f'<p class="stitch">result of <b>{escape(tool_call.name)}</b> <code>{escape(call_id)}</code>, '
        f'called by <a href="#call-{escape(made_by.request_id)}">#{made_by.index}</a></p>'
    )


def _reasoning(text: str) -> str:
    return f'<details class="reasoning"><summary>reasoning ({len(text):,} characters)</summary>{_text(text)}</details>'


def _text(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return f"<pre>{escape(text)}</pre>"
    size = human_bytes(len(text.encode("utf-8", "replace")))
    return (
        f"<pre>{escape(text[:TEXT_LIMIT])}</pre>"
        f'<p class="cut">… cut: {len(text) - TEXT_LIMIT:,} more characters ({size} in all; '
        "`agentcap inspect` shows the whole message)</p>"
    )


def _tool_call(report: Report, call: Call, tool_call: ToolCall, *, stitched: bool) -> str:
    parts = [
        f'<div class="tool"><p>→ <b>{escape(tool_call.name or "?")}</b> <code>{escape(tool_call.id)}</code></p>',
        _text(pretty_arguments(tool_call.arguments)),
    ]
    result = report.results.get((call.run_id or "", tool_call.id)) if stitched and tool_call.id else None
    if result is not None:
        text = content_text(result.message.get("content"))
        parts.append(
            f'<details class="result"><summary>result, sent with '
            f'<a href="#call-{escape(result.call.request_id)}">#{result.call.index}</a>: '
            f"{escape(_one_line(text, 80))}</summary>{_text(text)}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def _response(report: Report, call: Call) -> str:
    decoded: DecodedResponse = call.decoded
    parts = ['<div class="role">response</div>']
    if decoded.error:
        parts.append(f'<p class="bad">error: {escape(decoded.error)}</p>')
    parts += [f'<p class="warn">⚠ {escape(problem)}</p>' for problem in decoded.problems]
    if decoded.reasoning:
        parts.append(_reasoning(decoded.reasoning))
    if decoded.content:
        parts.append(_text(decoded.content))
    parts += [_tool_call(report, call, tool_call, stitched=True) for tool_call in decoded.tool_calls]
    finish = decoded.finish_reason or "-"
    usage = json.dumps(call.usage, ensure_ascii=False) if call.usage else "none"
    parts.append(
        f'<p class="note">finish: {escape(finish)} · usage as sent: <code>{escape(usage)}</code></p>'
    )
    return f'<section class="msg response">{"".join(parts)}</section>'
