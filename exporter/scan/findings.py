"""One finding type for every scanner: where a secret is and how sure we are, never what it is.

The raw secret exists only between parsing a scanner's output and hashing it. Redaction needs
it a little longer, so the parsers also hand it to a `SecretBook`, which lives in memory only
and refuses to be printed or serialised.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Literal, NoReturn

Status = Literal["verified", "unknown", "unverified"]
STATUSES: tuple[Status, ...] = ("verified", "unknown", "unverified")

# Below this length first4…last4 would reveal most of the secret, so it is fully masked.
_MIN_PREVIEW_LENGTH = 16


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def masked_preview(secret: str) -> str:
    if len(secret) < _MIN_PREVIEW_LENGTH:
        return "*" * 8
    return f"{secret[:4]}…{secret[-4:]}"


@dataclass(frozen=True)
class Finding:
    """A secret a scanner reported. `file` is POSIX and relative to the run (or bundle) directory."""

    scanner: str
    detector: str
    file: str
    line: int | None
    status: Status
    sha256: str
    preview: str

    @property
    def sha8(self) -> str:
        return self.sha256[:8]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        if data.get("status") not in STATUSES:
            raise ValueError(f"unknown finding status {data.get('status')!r}")
        return cls(
            scanner=str(data["scanner"]),
            detector=str(data["detector"]),
            file=str(data["file"]),
            line=None if data.get("line") is None else int(data["line"]),
            status=data["status"],
            sha256=str(data["sha256"]),
            preview=str(data["preview"]),
        )


class SecretBook:
    """Raw secrets seen by this process, by sha256, kept in memory for `--redact` only."""

    def __init__(self) -> None:
        self._by_sha256: dict[str, str] = {}

    def remember(self, secret: str) -> str:
        digest = secret_sha256(secret)
        self._by_sha256[digest] = secret
        return digest

    def secret(self, sha256: str) -> str | None:
        return self._by_sha256.get(sha256)

    def merge(self, other: SecretBook) -> None:
        self._by_sha256.update(other._by_sha256)

    def __len__(self) -> int:
        return len(self._by_sha256)

    def __repr__(self) -> str:
        return f"SecretBook({len(self)} secrets)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretBook holds raw secrets and is never serialised")


def make_finding(
    book: SecretBook,
    *,
    scanner: str,
    detector: str,
    file: str,
    line: int | None,
    status: Status,
    secret: str,
) -> Finding:
    """Hash and mask `secret`; only `book` keeps the raw value."""
    return Finding(
        scanner=scanner,
        detector=detector,
        file=file,
        line=line if line and line > 0 else None,
        status=status,
        sha256=book.remember(secret),
        preview=masked_preview(secret),
    )
