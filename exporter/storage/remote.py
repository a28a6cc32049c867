"""A listed URL that readers use like a local `Path`: list, stat, open, read lines, stage.

`list_url` lists everything under a URL once (one paginated listing on an object store, not one
request per file), and every `RemotePath` below it answers `is_file`, `iterdir`, `stat` from that
listing. A reader therefore sees one consistent set of files and sizes however the storage changes
meanwhile; `agentcap sync` only ever replaces a captures file by a longer one with the same prefix,
so reading the listed size of it is reading a prefix of complete lines.

Contents are streamed (`open`, `iter_lines`, `stage_files`): memory holds a block and the current
line, never a whole file.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from exporter.storage.location import StorageError, Url, filesystem, shown, storage_errors

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

READ_BLOCK = 8 * 1024 * 1024  # one ranged GET per block: few requests, bounded memory
STAGE_ATTEMPTS = 3  # an object replaced while being read (sync of a live run) is read again


@dataclass(frozen=True)
class RemoteStat:
    st_size: int
    st_mtime: float = 0.0


@dataclass(eq=False)
class Listing:
    """Everything under one URL as listed once: relative file path -> size, and the directories."""

    url: str
    fs: AbstractFileSystem
    root: str  # the path inside `fs`
    files: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def key(self, relative: str) -> str:
        return f"{self.root}/{relative}" if relative else self.root


def list_url(url: Url | str) -> RemotePath:
    """List `url` (one recursive listing) and return its root; an absent or empty URL is an error."""
    text = url.text if isinstance(url, Url) else url
    fs, root = filesystem(text)
    root = root.rstrip("/")
    listing = Listing(url=text.rstrip("/"), fs=fs, root=root)
    with storage_errors(text, "listing it"):
        found: dict[str, dict[str, Any]] = fs.find(root, detail=True, withdirs=False)
    prefix = root + "/"
    for name, info in found.items():
        name = name.rstrip("/")
        if not name.startswith(prefix):
            continue  # the root itself named as a file: not a directory of runs
        relative = name[len(prefix) :]
        listing.files[relative] = int(info.get("size") or 0)
        parent = posixpath.dirname(relative)
        while parent and parent not in listing.dirs:
            listing.dirs.add(parent)
            parent = posixpath.dirname(parent)
    if not listing.files:
        raise StorageError(f"{shown(text)}: nothing there (no such bucket or prefix, or it is empty)")
    listing.dirs.add("")
    return RemotePath(listing, "")


@dataclass(frozen=True)
class RemotePath:
    """One path under a listed URL. Only what readers use of `Path`; it never turns into a local path."""

    listing: Listing = field(compare=False, repr=False)
    relative: str

    def __truediv__(self, name: str) -> RemotePath:
        joined = posixpath.normpath(posixpath.join(self.relative, name)) if name else self.relative
        if joined == "." or joined.startswith("../") or joined == ".." or posixpath.isabs(joined):
            raise StorageError(f"{self}/{name}: outside {shown(self.listing.url)}")
        return RemotePath(self.listing, "" if joined == "." else joined)

    def __str__(self) -> str:
        return shown(f"{self.listing.url}/{self.relative}" if self.relative else self.listing.url)

    def __hash__(self) -> int:
        return hash((self.listing.url, self.relative))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and (other.listing.url, other.relative) == (
            self.listing.url,
            self.relative,
        )

    def __lt__(self, other: RemotePath) -> bool:
        return self.relative < other.relative

    @property
    def url(self) -> str:
        """The full URL, credentials included if the user typed them: for fsspec, never for printing."""
        return f"{self.listing.url}/{self.relative}" if self.relative else self.listing.url

    @property
    def name(self) -> str:
        return posixpath.basename(self.relative) or posixpath.basename(self.listing.root)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.listing, posixpath.dirname(self.relative))

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(part for part in self.relative.split("/") if part)

    def resolve(self) -> RemotePath:
        return self

    def as_posix(self) -> str:
        return str(self)

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def is_file(self) -> bool:
        return self.relative in self.listing.files

    def is_dir(self) -> bool:
        return self.relative in self.listing.dirs

    def is_symlink(self) -> bool:
        return False  # object stores have no links; a link in a synced dir was never uploaded

    def is_relative_to(self, other: RemotePath) -> bool:
        return (
            other.relative == ""
            or self.relative == other.relative
            or self.relative.startswith(other.relative + "/")
        )

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        if not self.is_relative_to(other):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(self.relative[len(other.relative) :].lstrip("/"))

    def stat(self) -> RemoteStat:
        if not self.is_file():
            raise FileNotFoundError(str(self))
        return RemoteStat(st_size=self.listing.files[self.relative])

    def iterdir(self) -> Iterator[RemotePath]:
        if not self.is_dir():
            raise NotADirectoryError(str(self))
        prefix = f"{self.relative}/" if self.relative else ""
        children = {
            entry[len(prefix) :].split("/", 1)[0]
            for entry in [*self.listing.files, *self.listing.dirs]
            if entry.startswith(prefix) and entry != self.relative
        }
        for child in sorted(children):
            yield self / child

    def rglob(self, pattern: str) -> Iterator[RemotePath]:
        """Every file and directory below (only the `*` pattern: what readers use)."""
        if pattern != "*":
            raise ValueError("RemotePath.rglob supports '*' only")
        prefix = f"{self.relative}/" if self.relative else ""
        for entry in sorted({*self.listing.files, *self.listing.dirs}):
            if entry.startswith(prefix) and entry != self.relative:
                yield RemotePath(self.listing, entry)

    def open(self, mode: str = "rb", encoding: str | None = None) -> IO[Any]:
        if mode not in ("rb", "r"):
            raise ValueError("RemotePath is read-only")
        if not self.is_file():
            raise FileNotFoundError(str(self))
        with storage_errors(self.url, "opening it"):
            handle: IO[Any] = self.listing.fs.open(
                self.listing.key(self.relative), "rb", block_size=READ_BLOCK, cache_type="readahead"
            )
        if mode == "r":
            import io

            return io.TextIOWrapper(handle, encoding=encoding or "utf-8")
        return handle

    def read_bytes(self) -> bytes:
        size = self.stat().st_size  # not listed: FileNotFoundError, as for a local path
        with storage_errors(self.url, "reading it"), self.open() as handle:
            return handle.read(size)  # type: ignore[no-any-return]

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def read_range(self, start: int, end: int) -> bytes:
        with storage_errors(self.url, "reading it"), self.open() as handle:
            handle.seek(start)
            return handle.read(end - start)  # type: ignore[no-any-return]

    def iter_raw_lines(self, up_to: int | None = None) -> Iterator[tuple[int, bytes, bool]]:
        """(offset, line without newline, complete) for the listed size (or `up_to` bytes), streamed."""
        size = self.stat().st_size if up_to is None else min(up_to, self.stat().st_size)
        with storage_errors(self.url, "reading it"), self.open() as handle:
            offset, pending = 0, b""
            while offset + len(pending) < size:
                block = handle.read(min(READ_BLOCK, size - offset - len(pending)))
                if not block:
                    break
                pending += block
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    yield offset + start, pending[start:end], True
                    start = end + 1
                offset += start
                pending = pending[start:]
            if pending:
                yield offset, pending, False


def stage_files(source: RemotePath, destination: Path, relatives: list[str]) -> None:
    """Copy files below `source` to the same relative paths below `destination`, streamed, in order.

    Order matters to callers (run.json before captures: see `exporter.runs`). A name that would
    leave `destination` is refused: object keys may contain `..`, local paths must not.
    """
    root = destination.resolve()
    for relative in relatives:
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or ".." in PurePosixPath(relative).parts:
            raise StorageError(f"{source / relative}: a name outside its run; refusing to stage it")
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_down(source / relative, target)


def _copy_down(path: RemotePath, target: Path) -> None:
    size = path.stat().st_size
    for attempt in range(1, STAGE_ATTEMPTS + 1):
        try:
            with storage_errors(path.url, "copying it"), path.open() as handle, target.open("wb") as out:
                copied = 0
                while copied < size and (block := handle.read(min(READ_BLOCK, size - copied))):
                    out.write(block)
                    copied += len(block)
        except StorageError:
            if attempt == STAGE_ATTEMPTS:
                raise
            continue  # replaced while read (a live run being synced): its new version has the same prefix
        if copied == size:
            return
    os.remove(target)
    raise StorageError(f"{path}: shorter than listed while being copied (deleted meanwhile?); run again")
