"""Writing parquet the way the Hub wants it, for every dataset agentcap publishes.

Settings (see docs/export.md, "Parquet settings"):
- zstd: growing conversations repeat themselves; zstd finds that, snappy mostly does not.
- page index: lets the dataset viewer and DuckDB read one page instead of a whole column chunk.
- content-defined chunking: pages stay byte-identical across rewrites, so Xet deduplicates them.
  Chunks of 1-8 MiB rather than the default 256 KiB-1 MiB: zstd compresses each page on its own,
  and a growing conversation repeats the previous request, so a page must span several rows for
  zstd to see the repetition (measured: 3x smaller files, and faster, than the default chunks).
- row groups sized by bytes: one LLM request can be megabytes; a row count alone would make row
  groups the viewer refuses to page (it gives up around 300 MB per row group).
- no dictionary or min/max statistics for the big JSON text columns: neither helps a reader, and
  both cost time and space on multi-megabyte values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 16 * 1024 * 1024
"""Uncompressed bytes per row group: well under the viewer's limit, and small enough that writing
(one group being built while the previous one is compressed) stays under ~250 MB peak RSS."""

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
CHUNKING = {"min_chunk_size": 1024 * 1024, "max_chunk_size": 8 * 1024 * 1024}


def writer_options(schema: pa.Schema, big_text_columns: Collection[str] = ()) -> dict[str, object]:
    """Keyword arguments for `pq.ParquetWriter` with our settings."""
    small_columns = [name for name in schema.names if name not in big_text_columns]
    return {
        "compression": COMPRESSION,
        "compression_level": COMPRESSION_LEVEL,
        "write_page_index": True,
        "use_content_defined_chunking": CHUNKING,
        "use_dictionary": small_columns,
        "write_statistics": small_columns,
    }


class ParquetFileWriter:
    """A parquet file written in row groups, with footer key-value metadata added at close.

    Each `write()` call becomes one row group (callers size their batches with `ROW_GROUP_BYTES`).
    Use as a context manager: on an exception the
    partial file is removed, so a failed export never leaves a truncated parquet behind.

    Writes happen on a background thread, one row group at a time: pyarrow encodes and compresses
    without the GIL, so the caller builds the next batch meanwhile. At most one batch waits, which
    keeps memory bounded at about two row groups.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        metadata: Mapping[str, str] | None = None,
        big_text_columns: Collection[str] = (),
        sorted_by: str | None = None,
    ) -> None:
        self.path = path
        self.schema = schema
        self.metadata: dict[str, str] = dict(metadata or {})
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        sorting = [pq.SortingColumn(schema.get_field_index(sorted_by))] if sorted_by else None
        self._writer = pq.ParquetWriter(
            path, schema, sorting_columns=sorting, **writer_options(schema, big_text_columns)
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._pending: Future[None] | None = None

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        if not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        if table.num_rows:
            self._wait()
            self._pending = self._thread.submit(
                self._writer.write_table, table, row_group_size=table.num_rows
            )
            self.rows += table.num_rows

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises a failed write here, in the caller's thread

    def close(self) -> None:
        try:
            self._wait()
            if self.metadata:
                self._writer.add_key_value_metadata(self.metadata)
        finally:
            self._thread.shutdown()
            self._writer.close()

    def __enter__(self) -> ParquetFileWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the original error is the one worth reporting
            self.close()
        self.path.unlink(missing_ok=True)
