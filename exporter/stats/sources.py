"""Call facts from whatever TARGET names: a runs dir, a run, a parquet file or a Hub dataset.

TARGET means what it means for `inspect` (exporter.inspect.command.resolve_source decides), so a
user can point `stats`, `report` and `inspect` at the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import httpx2
import pyarrow as pa

from exporter.core.errors import UserError
from exporter.inspect.hub_source import HubSource
from exporter.inspect.sources import ParquetSource, RunsDirSource, RunSource
from exporter.inspect.targets import Source
from exporter.shared.hub_client import short_reason, unreachable
from exporter.shared.runs import Warn, list_runs, warn_on_stderr
from exporter.shared.totals import CallFacts, parquet_facts, run_facts


def source_facts(source: Source, *, warn: Warn = warn_on_stderr) -> Iterator[CallFacts]:
    if isinstance(source, RunsDirSource):
        for run in list_runs(source.runs_dir):
            yield from run_facts(run, warn=warn)
    elif isinstance(source, RunSource):
        yield from run_facts(source.run, warn=warn)
    elif isinstance(source, ParquetSource):
        yield from _parquet(str(source.path), str(source.path))
    else:
        yield from hub_facts(source)


def hub_facts(source: HubSource) -> Iterator[CallFacts]:
    """Every file of the dataset, read by ranged requests for the small columns only."""
    from huggingface_hub import HfFileSystem
    from huggingface_hub.errors import HfHubHTTPError

    files = source.entries()  # pins the revision; one-line errors for a missing or private dataset
    filesystem = HfFileSystem(endpoint=source.api.endpoint, token=source.api.token, skip_instance_cache=True)
    for file in files:
        where = f"{source.title}/{file.path}"
        try:
            with filesystem.open(f"datasets/{source.repo_id}@{source.revision}/{file.path}", "rb") as handle:
                yield from _parquet(handle, where)
        except HfHubHTTPError as error:
            raise UserError(f"{where}: the Hub answered {short_reason(error)}; try again later") from error
        except httpx2.TransportError as error:
            raise UserError(f"{where}: {unreachable(error, source.api.endpoint)}") from error


def _parquet(source: str | BinaryIO, where: str) -> Iterator[CallFacts]:
    try:
        yield from parquet_facts(source)
    except pa.ArrowException as error:
        raise UserError(f"{where}: not a readable parquet file ({error})") from error
    except UserError as error:
        raise UserError(f"{where}: {error.message}") from error
