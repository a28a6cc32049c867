"""The Hub client, resolved the way huggingface_hub resolves it (endpoint, token), and Hub failures in words."""

from __future__ import annotations

import os

import httpx2
from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

from exporter.core.errors import UserError

LOGIN_HINT = (
    "run `hf auth login` (or set HF_TOKEN to a write token from https://huggingface.co/settings/tokens)"
)


def hub_endpoint() -> str:
    """`HF_ENDPOINT` read now (huggingface_hub reads it once at import), else the library's default."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def connect_hub(*, require_token: bool = True) -> HfApi:
    """An HfApi for the configured endpoint with the token huggingface_hub would use.

    The token comes from the library's own resolution (`HF_TOKEN`, then the login saved under
    `HF_HOME` / `HF_TOKEN_PATH`), so whatever `hf auth login` set up works here. Without one, a
    push is refused up front; a dry run goes on without reading the remote state.
    """
    token = get_token()
    if token is None and require_token:
        raise UserError(f"no Hugging Face token found; {LOGIN_HINT}")
    return HfApi(endpoint=hub_endpoint(), token=token or False)


def status_of(error: BaseException) -> int | None:
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return error.response.status_code
    return None


def short_reason(error: BaseException) -> str:
    """The error in a few words: `HTTP 500 (server message)` or the transport failure."""
    status = status_of(error)
    if status is None:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    assert isinstance(error, HfHubHTTPError)
    message = (error.server_message or "").strip().splitlines()
    return f"HTTP {status}" + (f" ({message[0]})" if message else "")


def unreachable(error: httpx2.TransportError, endpoint: str) -> str:
    return f"could not reach {endpoint} ({short_reason(error)}); check the network or HF_ENDPOINT"
