"""Captures → parquet: the fast path from `captures.jsonl` to one parquet file per (model, upstream).

Two streaming passes over the file, so memory stays flat however long the run is:

1. `index_run` decodes every line into a small typed struct (msgspec skips the bodies without
   building Python objects) and remembers, per (model, upstream) group, each call's `seq` and where
   its line is. Malformed lines are reported here, once.
2. `write_group` re-reads that group's lines in `seq` order (lines are in completion order, rows
   must be in arrival order) and fills the columns. Request and response bodies are copied as the
   raw JSON bytes the addon wrote (`msgspec.Raw`): they are already UTF-8 JSON text, exactly
   what the `request`/`response` columns hold, so nothing is parsed into objects or re-serialised.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from exporter import __version__
from exporter.core.names import provider_for
from exporter.core.record import (
    CAPTURE_SCHEMA,
    CAPTURES_FILE,
    MISSING,
    IndexRecord,
    Message,
    RawRecord,
    present,
)
from exporter.core.usage import normalise_usage
from exporter.core.values import first_user_prompt
from exporter.export.build.dataset_schema import CAPTURES_SCHEMA, DATASET_SCHEMA_VERSION
from exporter.shared.parquet_io import ROW_GROUP_BYTES, ParquetFileWriter
from exporter.shared.paths import open_beneath
from exporter.shared.runs import (
    SNAPSHOT_KEY,
    CaptureSnapshot,
    Line,
    LinePolicy,
    RunDir,
    Warn,
    iter_lines,
    warn_on_stderr,
)
from exporter.shared.wire import answer_usage

BIG_TEXT_COLUMNS = ("request", "response", "usage", "error")

Progress = Callable[[int], None]


# --- pass 1: the index --------------------------------------------------------------------------


@dataclass
class CallGroup:
    """The calls of one run that go into one parquet file."""

    model: str
    upstream_url: str
    calls: list[tuple[int, int, int, int]] = field(default_factory=list)  # (seq, offset, length, line)
    provider: str = field(init=False)

    def __post_init__(self) -> None:
        self.provider = provider_for(self.upstream_url, self.model)


@dataclass
class RunIndex:
    """What pass 1 learned about a run: its calls, grouped by (model, upstream), one file per group."""

    groups: dict[tuple[str, str], CallGroup] = field(default_factory=dict)
    calls: int = 0
    lines: int = 0  # number of the last line read


def index_run(
    run: RunDir,
    *,
    strict: bool = False,
    warn: Warn = warn_on_stderr,
    progress: Progress | None = None,
    up_to: int | None = None,
) -> RunIndex:
    """Pass 1 over the run's captures (only their first `up_to` bytes if given: a snapshot)."""
    policy = LinePolicy(run.captures_path, strict=strict, warn=warn)
    index = RunIndex()
    for line in iter_lines(run.captures_path, up_to):
        index.lines = line.number
        if progress:
            progress(len(line.content) + 1)
        record = policy.decode(line, IndexRecord)
        if record is None:
            continue
        key = (record.model(), record.upstream_url or "")
        group = index.groups.setdefault(key, CallGroup(model=key[0], upstream_url=key[1]))
        group.calls.append((record.seq, line.offset, len(line.content), line.number))
        index.calls += 1
    return index


# --- pass 2: rows ---------------------------------------------------------------------------------


Piece = bytes | msgspec.Raw
Member = tuple[bytes, Piece]  # (key, JSON value)


class _TextColumn:
    """A non-null string column built straight from byte pieces: no per-row Python strings."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.offsets = array("i", [0])

    def append(self, *pieces: Piece) -> None:
        for piece in pieces:
            self.data += piece  # Raw supports the buffer protocol
        self.offsets.append(len(self.data))

    def finish(self) -> pa.Array:
        count = len(self.offsets) - 1
        column = pa.StringArray.from_buffers(count, pa.py_buffer(self.offsets), pa.py_buffer(self.data))
        column.validate(full=True)  # refuses invalid UTF-8 rather than writing it
        return column


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _object(*members: Member) -> tuple[Piece, ...]:
    """`{"key":value,...}` as byte pieces; values (often megabytes of raw JSON) are not copied."""
    pieces: list[Piece] = [b"{"]
    for position, (key, value) in enumerate(members):
        pieces += [b',"' if position else b'"', key, b'":', value]
    pieces.append(b"}")
    return tuple(pieces)


def _error_member(record: RawRecord) -> tuple[Member, ...]:
    return ((b"error", record.error),) if present(record.error) else ()


def _non_json_body(message: Message) -> tuple[Member, ...]:
    """A body that was not JSON, kept under the capture format's own field names."""
    fields = (
        (b"body_text", message.body_text),
        (b"body_base64", message.body_base64),
        (b"decode_error", message.decode_error),
    )
    return tuple((key, _json(value)) for key, value in fields if value is not None)


def _request_pieces(record: RawRecord) -> tuple[Piece, ...]:
    message = record.request
    if message is None:
        return (b"{}",)
    if len(message.body):
        return (message.body,)
    return _object(*_non_json_body(message))


def _response_pieces(record: RawRecord) -> tuple[Piece, ...]:
    message = record.response
    if len(record.websocket):
        return _object((b"websocket", record.websocket))
    if message is None:
        return _object(*_error_member(record))
    if message.stream:
        text: Member = (
            (b"raw", message.raw) if len(message.raw) else (b"raw_base64", _json(message.raw_base64 or ""))
        )
        return _object((b"stream", b"true"), text, *_error_member(record))
    if len(message.body):
        return (message.body,)
    return _object(*_non_json_body(message), *_error_member(record))


def _optional_json(raw: msgspec.Raw) -> bytes | None:
    return bytes(raw) if present(raw) else None


def _usage_columns(record: RawRecord) -> dict[str, Any]:
    """`usage` as recorded (for Gemini, read from the answer: its record keeps none) and the token
    columns, the usage normalised (small: parsing it costs nothing)."""
    raw: bytes | None
    if present(record.usage):
        raw = bytes(record.usage)
        usage = msgspec.json.decode(record.usage)
    else:
        usage = answer_usage(record.api, record.response)
        raw = _json(usage) if usage is not None else None
    return {"usage": raw} | normalise_usage(usage, record.api).tokens()


@dataclass
class TaskSummary:
    """Per task in one file: the `tasks` footer entry (lets a browser label files from the footer)."""

    id: str
    turns: int | None = None
    calls: int = 0
    prompt: str = ""

    def as_metadata(self) -> dict[str, object]:
        return {"id": self.id, "turns": self.turns, "calls": self.calls, "prompt": self.prompt}


class _Batch:
    """Rows of one row group, column by column."""

    def __init__(self) -> None:
        self.request = _TextColumn()
        self.response = _TextColumn()
        self.columns: dict[str, list[object]] = {
            name: [] for name in CAPTURES_SCHEMA.names if name not in ("request", "response")
        }

    @property
    def rows(self) -> int:
        return len(self.columns["request_id"])

    @property
    def nbytes(self) -> int:
        return len(self.request.data) + len(self.response.data)

    def add(self, record: RawRecord, group: CallGroup, run: RunDir) -> None:
        response = record.response
        self.request.append(*_request_pieces(record))
        self.response.append(*_response_pieces(record))
        values = {
            "request_id": record.request_id,
            "model": group.model,
            "captured_at": round(record.captured_at * 1_000_000),
            "task_id": record.task_id,
            "turn": record.turn,
            "served_by": record.served_by,
            "served_build_info": record.served_build_info,
            "served_model": record.served_model,
            "provider": group.provider,
            "upstream_url": group.upstream_url,
            "run_id": run.run_id,
            "agent": run.agent,
            "seq": record.seq,
            "api": record.api,
            "stream": response.stream if response else None,
            "status_code": response.status_code if response else None,
            "ttfb_ms": record.ttfb_ms,
            "duration_ms": record.duration_ms,
            "error": _optional_json(record.error),
            **_usage_columns(record),
        }
        for name, value in values.items():
            self.columns[name].append(value)

    def table(self) -> pa.Table:
        text = {"request": self.request, "response": self.response}
        arrays = [
            text[name].finish() if name in text else pa.array(self.columns[name], type=field.type)
            for name, field in zip(CAPTURES_SCHEMA.names, CAPTURES_SCHEMA, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=CAPTURES_SCHEMA)


def _records_in_seq_order(
    run: RunDir, group: CallGroup, policy: LinePolicy, progress: Progress | None
) -> Iterator[RawRecord]:
    descriptor = open_beneath(run.local, CAPTURES_FILE)
    try:
        for _seq, offset, length, number in sorted(group.calls):
            content = os.pread(descriptor, length, offset)
            if progress:
                progress(length + 1)
            record = policy.decode(Line(number, offset, content, complete=True), RawRecord)
            if record is not None:
                yield record
    finally:
        os.close(descriptor)


@dataclass
class WrittenFile:
    path: Path
    rows: int


def write_group(
    run: RunDir,
    group: CallGroup,
    path: Path,
    *,
    strict: bool = False,
    warn: Warn = warn_on_stderr,
    progress: Progress | None = None,
    snapshot: CaptureSnapshot | None = None,
    exported_at: str | None = None,
) -> WrittenFile:
    """One parquet file holding the group's calls sorted by `seq`, with the footer metadata.

    `exported_at` comes from the export's stamp (exporter.core.names.ExportStamp); default: now.
    """
    policy = LinePolicy(run.captures_path, strict=strict, warn=warn)
    tasks: dict[str, TaskSummary] = {}
    with ParquetFileWriter(
        path, CAPTURES_SCHEMA, big_text_columns=BIG_TEXT_COLUMNS, sorted_by="seq"
    ) as writer:
        batch = _Batch()
        for record in _records_in_seq_order(run, group, policy, progress):
            if record.task_id:
                _note_task(tasks, record)
            batch.add(record, group, run)
            if batch.nbytes >= ROW_GROUP_BYTES:
                writer.write(batch.table())
                batch = _Batch()
        writer.write(batch.table())
        tasks_by_id = sorted(tasks.values(), key=lambda task: task.id)
        writer.metadata = file_metadata(run, group, tasks_by_id, snapshot, exported_at)
    return WrittenFile(path=path, rows=writer.rows)


def _note_task(tasks: dict[str, TaskSummary], record: RawRecord) -> None:
    task_id = record.task_id or ""
    task = tasks.get(task_id)
    if task is None:
        # Records arrive in seq order, so this is the task's first request.
        body = record.request.body if record.request else MISSING
        task = tasks[task_id] = TaskSummary(id=task_id, prompt=first_user_prompt(body) if len(body) else "")
    task.calls += 1
    if record.turn is not None:
        task.turns = max(task.turns or 0, record.turn)


def file_metadata(
    run: RunDir,
    group: CallGroup,
    tasks: list[TaskSummary],
    snapshot: CaptureSnapshot | None = None,
    exported_at: str | None = None,
) -> dict[str, str]:
    """Footer key-value metadata: a browser can label a file from a ranged read of its footer."""
    metadata = {
        "agent": run.agent,
        "model": group.model,
        "provider": group.provider,
        "upstream_url": group.upstream_url,
        "run_id": run.run_id,
        "schema_version": DATASET_SCHEMA_VERSION,
        "capture_schema": CAPTURE_SCHEMA,
        "exporter_version": f"agentcap {__version__}",
        "exported_at": exported_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "tasks": json.dumps([task.as_metadata() for task in tasks], ensure_ascii=False),
    }
    if snapshot is not None:
        metadata[SNAPSHOT_KEY] = json.dumps(snapshot.as_json())
    return metadata
