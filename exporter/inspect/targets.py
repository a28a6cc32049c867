"""What TARGET names, for every command that reads calls (`inspect`, `stats`, `report`).

Tried in a fixed order: nothing (the runs dir), a `.parquet` file, a Hub dataset (`hf://…`, a Hub
URL, or OWNER/NAME when no such local path exists), a runs dir, a run directory, a run id under the
runs dir, and a request-id prefix (which names one call, for `inspect` to print).
"""

from __future__ import annotations

import re
from pathlib import Path

from exporter.core.errors import UserError
from exporter.core.names import parse_dataset_name
from exporter.inspect.hub_source import HubSource
from exporter.inspect.sources import ParquetSource, RunsDirSource, RunSource
from exporter.shared.runs import RunDir, is_run_dir, list_runs, open_runs_dir
from exporter.storage import Url, parse_location

REQUEST_ID_PREFIX = re.compile(r"^[0-9a-f]{6,32}$")
TARGET_FORMS = (
    "nothing (the runs dir), a runs dir, a run directory or run id, a .parquet file, "
    "OWNER/NAME (also hf://datasets/OWNER/NAME or a Hub URL), or a request-id prefix (6+ hex digits)"
)

Source = RunsDirSource | RunSource | ParquetSource | HubSource


def resolve_source(
    target: str | None, *, runs_dir: Path, reports: list[Path], revision: str | None
) -> Source | None:
    """What TARGET names, tried in a fixed order; None for a request-id prefix."""
    if target is None:
        if not runs_dir.is_dir():
            raise UserError(f"no runs dir {runs_dir}; record a run first, or pass {TARGET_FORMS}")
        return RunsDirSource(runs_dir, reports)
    path = Path(target)
    if target.endswith(".parquet"):
        if not path.is_file():
            raise UserError(f"{target}: no such parquet file")
        return ParquetSource(path)
    location = parse_location(target)
    hub_dataset = target.startswith(("hf://", "https://", "http://")) and not target.startswith(
        "hf://buckets/"
    )
    if hub_dataset:
        return hub_source(target, revision)
    if isinstance(location, Url):  # runs in object storage: listed once, streamed
        remote = open_runs_dir(location)
        if is_run_dir(remote):
            return RunSource(RunDir.load(remote), reports)
        if list_runs(remote):
            return RunsDirSource(remote, reports)
        raise UserError(f"{target}: holds no runs; pass {TARGET_FORMS}")
    path = location  # file:// URLs are local paths
    if path.is_dir():
        if is_run_dir(path):
            return RunSource(RunDir.load(path), reports)
        if list_runs(path):
            return RunsDirSource(path, reports)
        raise UserError(f"{target}: directory holds no runs; pass {TARGET_FORMS}")
    if "/" not in target and is_run_dir(runs_dir / target):
        return RunSource(RunDir.load(runs_dir / target), reports)
    if REQUEST_ID_PREFIX.match(target):
        return None
    if looks_like_a_path(target) and not path.exists():
        raise UserError(f"{target}: no such run or file; pass {TARGET_FORMS}")
    if target.count("/") == 1 and not path.exists():
        return hub_source(target, revision)
    raise UserError(f"{target}: not a run, file, dataset or request id; pass {TARGET_FORMS}")


def looks_like_a_path(target: str) -> bool:
    """Absolute, `./`, `../`, `~`, or inside a directory that exists here (`runs/nope-typo`): a
    mistyped local path, not OWNER/NAME on the Hub (hf://datasets/OWNER/NAME always goes there)."""
    parts = Path(target).parts
    return target.startswith(("/", ".", "~")) or (len(parts) > 1 and Path(parts[0]).is_dir())


def hub_source(target: str, revision: str | None) -> HubSource:
    """A Hub dataset named the way every command names one (`exporter.core.names.parse_dataset_name`)."""
    from exporter.shared.hub_client import connect_hub  # the Hub client only when a Hub target is used

    name = parse_dataset_name(target, option="TARGET")
    return HubSource(connect_hub(require_token=False), name.repo_id, revision=revision or name.revision)


def calls_source(target: str | None, *, runs_dir: Path, revision: str | None = None) -> Source:
    """The source TARGET names, for commands that read many calls: a request id is refused."""
    source = resolve_source(target, runs_dir=runs_dir, reports=[], revision=revision)
    if source is None:
        raise UserError(
            f"{target}: a request id names one call (`agentcap inspect {target}` shows it); pass a runs dir, "
            "a run directory or run id, a .parquet file, or hf://datasets/OWNER/NAME"
        )
    return source
