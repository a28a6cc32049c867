"""Writing rollout rows as parquet (fixed schema, row groups sized by bytes) or JSONL, streaming."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import msgspec
import pyarrow as pa

from exporter.errors import UserError
from exporter.parquet_io import ROW_GROUP_BYTES, ParquetFileWriter
from exporter.rollouts.record import ROLLOUT_SCHEMA

# A row's size is estimated from its message text; Arrow's in-memory size is close to that.
_ROWS_PER_BATCH = 1000


def _row_size(row: dict[str, Any]) -> int:
    return 512 + sum(
        len(m["content"])
        + len(m["reasoning_content"] or "")
        + sum(len(c["function"]["arguments"]) for c in m["tool_calls"])
        for m in row["messages"]
    )


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows → Arrow, column by column. Timestamps (all UTC) lose their tzinfo first: pyarrow converts
    naive datetimes about 7x faster than aware ones, and the column type already says UTC."""
    for row in rows:
        for key in ("started_at", "ended_at"):
            if row[key] is not None:
                row[key] = row[key].replace(tzinfo=None)
        for message in row["messages"]:
            if message["timestamp"] is not None:
                message["timestamp"] = message["timestamp"].replace(tzinfo=None)
    columns = [pa.array([row[field.name] for row in rows], type=field.type) for field in ROLLOUT_SCHEMA]
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
            if batch_bytes >= ROW_GROUP_BYTES or len(batch) >= _ROWS_PER_BATCH:
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
