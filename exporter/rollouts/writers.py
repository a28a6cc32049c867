"""Writing rollout rows as parquet (fixed schema, row groups sized by bytes) or JSONL, streaming."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import msgspec
import pyarrow as pa

from exporter.core.errors import UserError
from exporter.rollouts.arrow_schema import ROLLOUT_SCHEMA
from exporter.shared.parquet_io import ROW_GROUP_BYTES, ParquetFileWriter

# Row groups of half the shared size: converting Python rows to Arrow briefly takes several times a
# group's size, and parser processes run alongside (measured: 16 MB groups put the process tree at
# ~300 MB peak RSS on the benchmark corpus, 8 MB groups at ~250 MB, at the same speed).
_ROW_GROUP_BYTES = ROW_GROUP_BYTES // 2
_ROWS_PER_BATCH = 1000


def _row_size(row: dict[str, Any]) -> int:
    """A row's size estimated from its message text; Arrow's in-memory size is close to that."""
    size = 512
    for message in row["messages"]:
        size += len(message["content"])
        if message["reasoning_content"]:
            size += len(message["reasoning_content"])
        for call in message["tool_calls"]:
            size += len(call["function"]["arguments"])
    return size


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows → Arrow, column by column (pyarrow 26 converts the UTC-aware datetimes as fast as naive ones).

    The buffers come from the system allocator: the writer thread frees them as soon as the group is
    written, and they go straight back to the OS (pyarrow's default mimalloc pool holds on to memory
    freed from another thread: +16 MB peak RSS measured)."""
    pool = pa.system_memory_pool()
    columns = [
        pa.array([row[field.name] for row in rows], type=field.type, memory_pool=pool)
        for field in ROLLOUT_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=ROLLOUT_SCHEMA)


def write_parquet(
    rows: Iterable[dict[str, Any]], path: Path, *, metadata: dict[str, str] | None = None
) -> int:
    """Stream rows into one parquet file; returns the row count. A failure leaves no partial file."""
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    with ParquetFileWriter(path, ROLLOUT_SCHEMA, metadata=metadata, big_text_columns=("messages",)) as writer:
        for row in rows:
            batch.append(row)
            batch_bytes += _row_size(row)
            if batch_bytes >= _ROW_GROUP_BYTES or len(batch) >= _ROWS_PER_BATCH:
                writer.write(_to_table(batch))
                batch, batch_bytes = [], 0
        if batch:
            writer.write(_to_table(batch))
        return writer.rows


def write_jsonl(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
    """One JSON object per row; timestamps as ISO-8601 UTC (`Z`)."""
    encoder = msgspec.json.Encoder()
    count = 0
    for row in rows:
        handle.write(encoder.encode(row) + b"\n")
        count += 1
    return count


def write_rows(rows: Iterable[dict[str, Any]], output: Path | None) -> int:
    """Rows to `output` by its suffix (.parquet or .jsonl); None or `-` writes JSONL to stdout."""
    if output is None or str(output) == "-":
        count = write_jsonl(rows, sys.stdout.buffer)
        sys.stdout.flush()
        return count
    if output.suffix == ".parquet":
        return write_parquet(rows, output)
    if output.suffix == ".jsonl":
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as handle:
            return write_jsonl(rows, handle)
    raise UserError(f"-o {output}: unknown output type; name the file *.parquet or *.jsonl (or - for stdout)")
