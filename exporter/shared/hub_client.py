"""The Hub client, resolved the way huggingface_hub resolves it: endpoint (HF_ENDPOINT) and token."""

from __future__ import annotations

import os

from huggingface_hub import HfApi, constants, get_token

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
