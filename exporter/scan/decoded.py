"""The text a consumer reconstructs from published data: what the scan reads and `--redact` rewrites.

A secret can be published without ever appearing literally in a file: written with JSON escapes
(`ghp\\u005f…`), inside a base64 body (`body_base64`, `raw_base64`, a binary WebSocket frame),
cut across the deltas of a streamed reply, or inside JSON held in a string (tool arguments, a
parquet cell). Whoever parses the JSON, decodes the base64 or joins the deltas gets it back whole.
This module is the one place that knows those encodings, used two ways:

- `texts(value)`: every text a consumer can rebuild from a JSON value; the scan renders them into
  a view file next to each published file (`render_view`), so the scanner reads them;
- `redact(value, replacer)`: the value with every secret replaced in each of those forms, the split
  ones included (the first delta gets the marker, the others lose their part of the secret).

A new kind of published file needs nothing here as long as it is JSON lines, a JSON document,
parquet or SQLite; anything else is scanned and replaced as raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import sqlite3
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec
import pyarrow.parquet as pq

SQLITE_MAGIC = b"SQLite format 3\x00"
BASE64_KEYS = frozenset({"body_base64", "raw_base64", "base64"})  # capture-format fields (and WS frames)
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")  # SSE line ends; str.splitlines() would also split on U+2028
_DATA = "data:"

JsonPath = tuple[str | int, ...]  # keys and list positions from the root of a JSON value


# --- replacing exact texts ------------------------------------------------------------------------


class Replacer:
    """Exact texts and what replaces each; longest first, so a secret holding another is replaced whole."""

    def __init__(self, replacements: dict[str, str]) -> None:
        self.replacements = {old: new for old, new in replacements.items() if old}
        ordered = sorted(self.replacements, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes = (
            re.compile(b"|".join(re.escape(old.encode("utf-8", "surrogatepass")) for old in ordered))
            if ordered
            else None
        )

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        if self._text is None:
            return []
        return [(m.start(), m.end(), self.replacements[m.group()]) for m in self._text.finditer(text)]

    def text(self, text: str) -> str:
        if self._text is None:
            return text
        return self._text.sub(lambda match: self.replacements[match.group()], text)

    def data(self, data: bytes) -> bytes:
        if self._bytes is None:
            return data
        return self._bytes.sub(
            lambda m: self.replacements[m.group().decode("utf-8", "surrogatepass")].encode(), data
        )


# --- what a consumer reconstructs -----------------------------------------------------------------


MIN_TEXT = 8  # no secret (nor any listed value) is shorter; shorter strings only fill the view
# A JSON string whose decoded text holds one of these was written with escapes, so the raw file
# does not show its text as is; any other string is visible in the raw file unless the writer
# escaped characters that need no escaping (`\u005f` for `_`, `\/`): then every string counts.
_ESCAPED_IN_JSON = re.compile(r'["\\\x00-\x1f]')


def texts(value: Any, *, shown_raw: str | bytes | None = None) -> list[str]:
    """Every text a consumer decodes from a JSON value that a scan of its raw form would not see.

    `shown_raw` is the JSON text the value was parsed from, when a scanner reads that text too:
    strings it shows as they are (no escapes) are then left out. Without it, every string counts.
    Base64 bodies, JSON inside strings and the joined deltas of streams always count.
    """
    found: list[str] = []
    _collect(value, found, every=_odd_escapes(shown_raw) if shown_raw is not None else True)
    return found


def _odd_escapes(raw: str | bytes) -> bool:
    return ("\\u" in raw or "\\/" in raw) if isinstance(raw, str) else (b"\\u" in raw or b"\\/" in raw)


def _collect(value: Any, found: list[str], *, every: bool) -> None:
    pending: list[tuple[object, Any]] = [(None, value)]
    while pending:
        key, item = pending.pop()
        if isinstance(item, str):
            if len(item) >= MIN_TEXT and (every or _ESCAPED_IN_JSON.search(item)):
                found.append(item)
            _derived(item, key, found)
        elif isinstance(item, dict):
            if key == "websocket":
                found += _joined(_frame_events(item))
            for name, child in item.items():
                if (
                    isinstance(name, str)
                    and len(name) >= MIN_TEXT
                    and (every or _ESCAPED_IN_JSON.search(name))
                ):
                    found.append(name)
                pending.append((name, child))
        elif isinstance(item, list):
            pending += [(None, child) for child in item]


def _derived(text: str, key: object, found: list[str]) -> None:
    """What a string decodes to: a base64 body, the JSON it holds, the events of a stream."""
    if key in BASE64_KEYS and (data := _base64(text)) is not None:
        decoded = data.decode("utf-8", "replace")
        found.append(decoded)
        _derived(decoded, None, found)
    elif (nested := _json_in(text)) is not None:
        _collect(nested, found, every=_odd_escapes(text))
    elif _is_stream(text):
        events = [event for _, event in _stream_events(_LINE_BREAK.split(text))]
        every = _odd_escapes(text)
        for event in events:
            _collect(event, found, every=every)
        found += _joined(events)


def _joined(events: list[Any]) -> list[str]:
    return ["".join(value for _, _, value in fragments) for fragments in _channels(events).values()]


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _json_in(text: str) -> Any:
    """The JSON object or array a string holds (tool arguments, a parquet cell), else None."""
    head = text[:1]
    if head.isspace():  # rare: lstrip() copies the whole string
        head = text.lstrip()[:1]
    if head not in ("{", "["):
        return None
    value = parse_json(text)
    return value if isinstance(value, dict | list) else None


def parse_json(text: str | bytes) -> Any:
    """The JSON value, or None. msgspec for speed; `json` for what only it reads (NaN, huge numbers)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        try:
            return json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


def _is_stream(text: str) -> bool:
    return text.startswith((_DATA, "event:", ":")) or "\ndata:" in text or "\rdata:" in text


def _stream_events(pieces: list[str]) -> Iterator[tuple[int, Any]]:
    """(index into `pieces`, payload) of each `data:` line holding JSON; `pieces` alternates lines and breaks."""
    for index in range(0, len(pieces), 2):
        line = pieces[index]
        if line.startswith(_DATA):
            event = parse_json(line[len(_DATA) :])
            if event is not None:
                yield index, event


def _frame_events(websocket: dict[str, Any]) -> list[Any]:
    events = []
    for message in websocket.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            event = _json_in(message["text"])
            if event is not None:
                events.append(event)
    return events


def _leaves(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, (*path, name))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _leaves(item, (*path, position))
    elif isinstance(value, str):
        yield path, value


def _channels(events: list[Any]) -> dict[JsonPath, list[tuple[int, JsonPath, str]]]:
    """The strings of a stream grouped by where they sit in their event, in stream order.

    A reply streamed as deltas (`choices.0.delta.content`, Anthropic `delta.text`, Responses
    `delta`, tool-call arguments) is the concatenation of one such group. Groups whose every
    value is the same (ids, model names) are not text being streamed and are left out.
    """
    groups: dict[JsonPath, list[tuple[int, JsonPath, str]]] = {}
    for index, event in enumerate(events):
        for path, value in _leaves(event):
            groups.setdefault(path, []).append((index, path, value))
    return {
        path: fragments
        for path, fragments in groups.items()
        if len(fragments) > 1 and len({value for _, _, value in fragments}) > 1
    }


# --- replacing in every decoded form --------------------------------------------------------------


def redact(value: Any, replacer: Replacer, key: object = None) -> Any:
    """`value` with every exact text of `replacer` replaced, in each form `texts` decodes."""
    if isinstance(value, dict):
        result = {
            replacer.text(name) if isinstance(name, str) else name: redact(item, replacer, name)
            for name, item in value.items()
        }
        if key == "websocket":
            _redact_frames(result, replacer)
        return result
    if isinstance(value, list):
        return [redact(item, replacer) for item in value]
    if isinstance(value, str):
        return _redact_string(value, replacer, key)
    return value


def redact_text(text: str, replacer: Replacer) -> str:
    """A string (a parquet cell, a database value): replaced as is, and inside the JSON or stream it holds."""
    return _redact_string(text, replacer, None)


# Only a text holding one of these can hide a secret in a decoded form: odd JSON escapes (at any
# depth, `\\u` still reads `\u`), a base64 field, a stream, WebSocket frames. Anything else is done
# once the exact forms are replaced, without parsing it.
_DECODABLE = re.compile(r'\\u|\\/|base64"|data:|"websocket"')


def _redact_string(text: str, replacer: Replacer, key: object) -> str:
    text = replacer.text(text)
    if key not in BASE64_KEYS and not _DECODABLE.search(text):
        return text
    if key in BASE64_KEYS and (data := _base64(text)) is not None:
        redacted = redact_bytes(data, replacer)
        return base64.b64encode(redacted).decode() if redacted != data else text
    if (nested := _json_in(text)) is not None:
        redacted = redact(nested, replacer)
        return dump_json(redacted) if redacted != nested else text
    if _is_stream(text):
        return _redact_stream(text, replacer)
    return text


def redact_bytes(data: bytes, replacer: Replacer) -> bytes:
    """Raw bytes: exact replacement, then every decoded form inside (invalid UTF-8 bytes kept as they were)."""
    data = replacer.data(data)
    text = data.decode("utf-8", "surrogateescape")
    redacted = _redact_string(text, replacer, None)
    return redacted.encode("utf-8", "surrogateescape") if redacted != text else data


def _redact_stream(text: str, replacer: Replacer) -> str:
    pieces = _LINE_BREAK.split(text)
    located = list(_stream_events(pieces))
    events = [redact(event, replacer) for _, event in located]
    _redact_split(events, replacer)
    for (index, original), event in zip(located, events, strict=True):
        if event != original:
            pieces[index] = (
                _DATA + (" " if pieces[index][len(_DATA) :].startswith(" ") else "") + dump_json(event)
            )
    return "".join(pieces)


def _redact_frames(websocket: dict[str, Any], replacer: Replacer) -> None:
    messages = [
        m for m in websocket.get("messages") or [] if isinstance(m, dict) and isinstance(m.get("text"), str)
    ]
    parsed = [(message, _json_in(message["text"])) for message in messages]
    located = [(message, event) for message, event in parsed if event is not None]
    events = [copy.deepcopy(event) for _, event in located]
    _redact_split(events, replacer)
    for (message, original), event in zip(located, events, strict=True):
        if event != original:
            message["text"] = dump_json(event)


def _redact_split(events: list[Any], replacer: Replacer) -> None:
    """Secrets cut across the events of a stream: the fragment where one starts gets the marker."""
    for fragments in _channels(events).values():
        joined = "".join(value for _, _, value in fragments)
        spans = replacer.spans(joined)
        if not spans:
            continue
        for (index, path, value), rewritten in zip(fragments, _cut(joined, spans, fragments), strict=True):
            if rewritten != value:
                _set(events[index], path, rewritten)


def _cut(
    joined: str, spans: list[tuple[int, int, str]], fragments: list[tuple[int, JsonPath, str]]
) -> Iterator[str]:
    """Each fragment's new text once the spans of `joined` are replaced."""
    begin = 0
    for _, _, value in fragments:
        end = begin + len(value)
        out: list[str] = []
        position = begin
        for span_start, span_end, marker in spans:
            if span_end <= begin or span_start >= end:
                continue
            if position < span_start:
                out.append(joined[position:span_start])
            if begin <= span_start:
                out.append(marker)
            position = max(position, min(span_end, end))
        out.append(joined[position:end])
        yield "".join(out)
        begin = end


def _set(container: Any, path: JsonPath, value: str) -> None:
    for step in path[:-1]:
        container = container[step]
    container[path[-1]] = value


def dump_json(value: Any) -> str:
    # default=str: parquet cells decode to datetimes too
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# --- views: the decoded texts of a file, for the scanner ------------------------------------------


@dataclass
class LineMap:
    """Where each line of a view came from: view line → line of the published file."""

    starts: array[int]  # first view line of each block
    sources: array[int]  # the published file's line for that block

    @classmethod
    def empty(cls) -> LineMap:
        return cls(array("q"), array("q"))

    def source_line(self, view_line: int | None) -> int | None:
        if view_line is None or not self.starts:
            return None
        position = bisect_right(self.starts, view_line) - 1
        return self.sources[position] if position >= 0 else None


class _ViewWriter:
    """Writes each distinct text once: a conversation re-sent with every call would repeat it
    hundreds of times (a finding is then reported where the text first appears)."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.lines = LineMap.empty()
        self.line = 1
        self.seen: set[bytes] = set()

    def block(self, source_line: int | None, items: Iterable[str]) -> None:
        self.lines.starts.append(self.line)
        self.lines.sources.append(source_line or 0)
        for text in items:
            digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if digest in self.seen:
                continue
            self.seen.add(digest)
            self.handle.write(text)
            self.handle.write("\n")
            self.line += text.count("\n") + 1


def render_view(source: Path, target: Path) -> LineMap:
    """Write the decoded texts of `source` to `target`, for the scanner to read beside the raw file.

    JSON lines and JSON documents are decoded line by line; parquet and SQLite cell by cell (their
    values included: compressed pages hide them from a raw scan). Any other file gives a view of
    only the JSON escapes it holds: the scanner reads its raw bytes.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", errors="replace") as handle:
        writer = _ViewWriter(handle)
        for source_line, items in _decoded_blocks(source):
            writer.block(source_line, items)
    return writer.lines


def _decoded_blocks(source: Path) -> Iterator[tuple[int | None, Iterable[str]]]:
    with source.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if source.suffix == ".parquet":
        yield from _parquet_blocks(source)
    elif head == SQLITE_MAGIC:
        yield from _sqlite_blocks(source)
    else:
        yield from _text_blocks(source)


def _text_blocks(source: Path) -> Iterator[tuple[int | None, Iterable[str]]]:
    with source.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            value = _json_line(line)
            if value is not None:
                yield number, texts(value, shown_raw=line)
            elif b"\\" in line:  # JSON written over several lines: only the escapes need decoding
                yield number, [_unescape(line.decode("utf-8", "replace"))]
    if source.suffix == ".json":  # a pretty-printed document (run.json, a session file)
        document = _json_line(source.read_bytes())
        if document is not None:
            yield None, texts(document)


def _json_line(line: bytes) -> Any:
    stripped = line.strip()
    return parse_json(stripped) if stripped[:1] in (b"{", b"[", b'"') else None


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(text: str) -> str:
    return _ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)) if m.group(1) else _SIMPLE.get(m.group(2), m.group(2)), text
    )


def _parquet_blocks(source: Path) -> Iterator[tuple[int | None, Iterable[str]]]:
    parquet = pq.ParquetFile(source)
    for key, value in (parquet.metadata.metadata or {}).items():
        if key != b"ARROW:schema":
            yield None, [key.decode("utf-8", "replace"), *_value_texts(value.decode("utf-8", "replace"))]
    for batch in parquet.iter_batches():
        for column in batch.columns:
            for value in column.to_pylist():
                if value is not None:
                    yield None, _value_texts(value)


def _value_texts(value: Any) -> Iterator[str]:
    """A cell: its text (or JSON for nested values) and every text decoded from it."""
    if isinstance(value, str):
        yield value
        found: list[str] = []
        _derived(value, None, found)
        yield from found
    elif isinstance(value, bytes):
        yield from _value_texts(value.decode("utf-8", "replace"))
    elif isinstance(value, dict | list):
        shown = dump_json(value)
        yield shown
        yield from texts(value, shown_raw=shown)
    else:
        yield str(value)


def _sqlite_blocks(source: Path) -> Iterator[tuple[int | None, Iterable[str]]]:
    connection = sqlite3.connect(f"file:{source}?mode=ro&immutable=1", uri=True)
    try:
        for table, column in sqlite_text_columns(connection):
            for (value,) in connection.execute(f"SELECT {quote(column)} FROM {quote(table)}"):
                if isinstance(value, str | bytes):
                    yield None, _value_texts(value)
    except sqlite3.Error:
        return  # not a database after all: its raw bytes are still scanned
    finally:
        connection.close()


def sqlite_text_columns(connection: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        for row in connection.execute(f"PRAGMA table_info({quote(table)})"):
            yield table, row[1]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
