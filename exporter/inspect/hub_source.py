"""A captures dataset on the Hub: list its parquet files, label them from their footers, open one.

Labelling a file needs only its footer (row count, and the agent, model and tasks the exporter
writes into the key-value metadata), so each file costs one ranged read of its last 8 KiB, or
two when the footer is bigger; the reads run in parallel. A file's rows are downloaded only when
it is opened, into the Hub cache, where huggingface_hub finds it again next time.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from exporter.core.errors import UserError
from exporter.inspect.calls import Call
from exporter.inspect.sources import HubFile, describe_footer, read_parquet_calls
from exporter.shared.hub_client import short_reason, unreachable

HF_DATASET_PREFIX = "hf://datasets/"
DATA_DIR = "data"
# A captures footer is ~5 KB for a one-row-group file; a bigger one (many row groups) costs a second
# read of exactly the missing bytes. Small probes keep the bytes read well under 1% of a ~1 MB file.
FOOTER_PROBE_BYTES = 8 * 1024
FOOTER_TRAILER_BYTES = 8  # 4-byte little-endian footer length + b"PAR1"
FOOTER_READERS = 8


@dataclass
class HubSource:
    api: HfApi
    repo_id: str
    revision: str | None = None
    cache_dir: Path | None = None  # None: the Hub cache huggingface_hub uses (HF_HUB_CACHE / HF_HOME)
    footer_probe: int = FOOTER_PROBE_BYTES
    bytes_fetched: int = 0  # ranged-read bytes, for the benchmark and the status line
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    first_level = "files"

    @property
    def title(self) -> str:
        return f"{HF_DATASET_PREFIX}{self.repo_id}"

    def entries(self) -> list[HubFile]:
        """The dataset's `data/**/*.parquet` files, footers not read yet. Pins the revision."""
        try:
            if self.revision is None or len(self.revision) != 40:
                self.revision = self.api.dataset_info(self.repo_id, revision=self.revision).sha
            tree = self.api.list_repo_tree(
                self.repo_id, DATA_DIR, recursive=True, repo_type="dataset", revision=self.revision
            )
            files = [
                HubFile(path=entry.path, size=getattr(entry, "size", 0) or 0)
                for entry in tree
                if entry.path.endswith(".parquet") and hasattr(entry, "size")
            ]
        except RepositoryNotFoundError as error:
            raise UserError(
                f"{self.title}: no such dataset, or it is private and you are not logged in "
                "(run `hf auth login` or set HF_TOKEN)"
            ) from error
        except RevisionNotFoundError as error:
            raise UserError(f"{self.title}: no revision {self.revision!r}") from error
        except HfHubHTTPError as error:
            if error.response is not None and error.response.status_code == 404:
                return []  # a dataset without a data/ folder: nothing to list
            raise UserError(
                f"{self.title}: the Hub answered {short_reason(error)}; try again later"
            ) from error
        except httpx2.TransportError as error:
            raise UserError(f"{self.title}: {unreachable(error, self.api.endpoint)}") from error
        return sorted(files, key=lambda file: file.path)

    def read_footers(self, files: list[HubFile], on_read: Callable[[HubFile], None] | None = None) -> None:
        """Read every footer in parallel, calling `on_read` as each one arrives."""
        if not files:
            return
        with ThreadPoolExecutor(max_workers=min(FOOTER_READERS, len(files))) as pool:
            for future in as_completed([pool.submit(self.read_footer, file) for file in files]):
                if on_read is not None:
                    on_read(future.result())

    def read_footer(self, file: HubFile) -> HubFile:
        try:
            probe = min(file.size, self.footer_probe)
            tail = self._read_range(file, file.size - probe, file.size)
            if len(tail) < FOOTER_TRAILER_BYTES or tail[-4:] != b"PAR1":
                raise ValueError("not a parquet file")
            footer_length = struct.unpack("<I", tail[-8:-4])[0] + FOOTER_TRAILER_BYTES
            if footer_length > len(tail):
                tail = self._read_range(file, file.size - footer_length, file.size - len(tail)) + tail
            describe_footer(file, pq.read_metadata(pa.BufferReader(tail)))
        except (ValueError, OSError, pa.ArrowException, HfHubHTTPError, httpx2.TransportError) as error:
            file.problem = f"footer unreadable: {error}"
        return file

    def _read_range(self, file: HubFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file at the pinned revision."""
        if end <= start:
            return b""
        url = hf_hub_url(
            self.repo_id, file.path, repo_type="dataset", revision=self.revision, endpoint=self.api.endpoint
        )
        headers = build_hf_headers(token=self.api.token) | {"Range": f"bytes={start}-{end - 1}"}
        response = get_session().get(url, headers=headers, follow_redirects=True)
        hf_raise_for_status(response)
        data = response.content
        if response.status_code != 206:  # a server that ignores Range sent the whole file
            data = data[start:end]
        with self._lock:
            self.bytes_fetched += len(response.content)
        return data

    def download(self, file: HubFile) -> Path:
        return Path(
            self.api.hf_hub_download(
                self.repo_id, file.path, repo_type="dataset", revision=self.revision, cache_dir=self.cache_dir
            )
        )

    def calls(self, file: HubFile) -> list[Call]:
        return read_parquet_calls(self.download(file))
