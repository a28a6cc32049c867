"""Parsing a runs location and turning storage failures into one-line errors.

A location is a local directory (`runs`, `/data/runs`, `file:///data/runs`) or a URL that an
fsspec backend serves. The backend is looked up by the URL's scheme; a missing one is named with
the package that provides it. Storage errors carry the storage's own reason, with anything that
looks like a credential masked: the reason is shown, a secret never is.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from exporter.core.errors import UserError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Credential-like: 20+ key characters mixing upper case, lower case and digits (keys, signatures, tokens).
_TOKEN_LIKE = re.compile(
    r"(?=[A-Za-z0-9/_+=-]*[A-Z])(?=[A-Za-z0-9/_+=-]*[a-z])(?=[A-Za-z0-9/_+=-]*[0-9])[A-Za-z0-9/_+=-]{20,}"
)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|HFAK)[A-Z0-9]{12,}\b")  # AWS / Hugging Face S3 key ids
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")

# scheme -> what to install for it (fsspec's own hint names the module, not how to get it).
BACKEND_PACKAGES = {
    "s3": "s3fs (pip install 'agentcap[s3]')",
    "s3a": "s3fs (pip install 'agentcap[s3]')",
    "gs": "gcsfs (pip install gcsfs)",
    "gcs": "gcsfs (pip install gcsfs)",
    "az": "adlfs (pip install adlfs)",
    "abfs": "adlfs (pip install adlfs)",
    "abfss": "adlfs (pip install adlfs)",
    "hf": "huggingface_hub (pip install huggingface_hub)",
}
CREDENTIALS_HINT = {
    "s3": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS or gcloud auth",
    "hf": "HF_TOKEN or `hf auth login`",
}


class StorageError(UserError):
    """A URL that cannot be used: no backend, unreachable, refused, or not there (one line, exit 2)."""


@dataclass(frozen=True)
class Url:
    """A location served by an fsspec backend (never a local path: those stay `Path`)."""

    text: str

    @property
    def scheme(self) -> str:
        return self.text.split("://", 1)[0].lower()

    def __str__(self) -> str:
        return shown(self.text)


Location = Path | Url


def is_url(text: str) -> bool:
    return bool(_SCHEME.match(text))


def parse_location(text: str | Path) -> Location:
    """`file://` URLs become local paths (read exactly as local ones are); other URLs stay URLs."""
    if isinstance(text, Path) or not is_url(text):
        return Path(text)
    if text.lower().startswith("file://"):
        return Path(unquote(urlsplit(text).path))
    return Url(text.rstrip("/"))


def shown(url: str) -> str:
    """The URL as it may be printed: `user:secret@` in it is masked."""
    return _USERINFO.sub(r"\1***@", url)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem serving `url`, and the path inside it. Backends read their own config."""
    import fsspec

    scheme = url.split("://", 1)[0].lower()
    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except ImportError:
        package = BACKEND_PACKAGES.get(scheme, f"the fsspec backend for {scheme}://")
        raise StorageError(
            f"{shown(url)}: no {scheme}:// storage backend is installed; install {package}"
        ) from None
    except ValueError as error:
        if "Protocol not known" in str(error):
            raise StorageError(
                f"{shown(url)}: unknown storage scheme {scheme}://; use a local path or a URL fsspec knows "
                "(s3://, gs://, hf://buckets/…, file://)"
            ) from None
        raise StorageError(f"{shown(url)}: {_reason(error)}") from None


@contextlib.contextmanager
def storage_errors(url: str, doing: str) -> Iterator[None]:
    """Any failure of the storage while `doing` becomes one StorageError line naming the URL."""
    try:
        yield
    except UserError:
        raise
    except FileNotFoundError as error:
        raise StorageError(
            f"{shown(url)}: not found while {doing} ({_reason(error)}); check the bucket and path"
        ) from None
    except PermissionError as error:
        raise StorageError(
            f"{shown(url)}: access denied while {doing} ({_reason(error)}); check the credentials the storage "
            f"reads from its usual env/config ({_credentials_hint(url)})"
        ) from None
    except Exception as error:  # backends raise their own types (botocore, aiohttp, httpx): all one line here
        if _is_connection_error(error):
            raise StorageError(
                f"{shown(url)}: cannot reach the storage while {doing} ({_reason(error)}); check the endpoint "
                "and the network"
            ) from None
        raise StorageError(f"{shown(url)}: storage error while {doing} ({_reason(error)})") from None


def _is_connection_error(error: BaseException) -> bool:
    names = " ".join(kind.__name__ for kind in type(error).__mro__)
    return isinstance(error, ConnectionError | TimeoutError) or "Connect" in names or "Timeout" in names


def _credentials_hint(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    return CREDENTIALS_HINT.get({"s3a": "s3", "gcs": "gs"}.get(scheme, scheme), "its credentials")


def _reason(error: BaseException) -> str:
    """The backend's own words on one line, shortened; token-like runs (keys, signatures) masked."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = re.sub(r"https?://\S+", lambda match: match.group().split("?", 1)[0], text)  # no signed queries
    text = _ACCESS_KEY_ID.sub("***", _TOKEN_LIKE.sub("***", text))
    return text if len(text) <= 160 else text[:159] + "…"
