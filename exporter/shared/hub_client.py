"""The `--push` value and the Hub client, resolved the way huggingface_hub resolves them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from huggingface_hub import HfApi, constants, get_token

from exporter.core.errors import UserError

HF_URI_PREFIX = "hf://datasets/"
# Hub repo names: 1-96 chars of [A-Za-z0-9._-], no "--" or "..", not starting/ending with "-" or ".".
_NAME = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# The longest suffix we append to BASE: "-<agent>-traces" with a long agent name still has to fit.
MAX_BASE_LENGTH = 60
LOGIN_HINT = (
    "run `hf auth login` (or set HF_TOKEN to a write token from https://huggingface.co/settings/tokens)"
)


@dataclass(frozen=True)
class PushTarget:
    owner: str
    base: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.base}"


@dataclass(frozen=True)
class HubPush:
    """`--push` and the flags that only make sense with it (`--replace` applies to local exports too)."""

    target: PushTarget
    public: bool = False
    dry_run: bool = False


def parse_push_target(value: str) -> PushTarget:
    """`OWNER/BASE` or `hf://datasets/OWNER/BASE` → PushTarget; anything else is a one-line UserError."""
    text = value.strip().removesuffix("/")
    if text.startswith(HF_URI_PREFIX):
        text = text[len(HF_URI_PREFIX) :]
    parts = text.split("/")
    if len(parts) != 2 or ":" in text:
        raise UserError(
            f"--push {value!r}: expected OWNER/BASE or hf://datasets/OWNER/BASE (e.g. --push alice/my-agent)"
        )
    owner, base = parts
    for label, name in (("OWNER", owner), ("BASE", base)):
        if not _NAME.match(name):
            raise UserError(
                f"--push {value!r}: {label} {name!r} is not a valid Hub name "
                "(letters, digits, '.', '_', '-'; no '--' or '..'; must start and end with a letter or digit)"
            )
    if len(base) > MAX_BASE_LENGTH:
        raise UserError(
            f"--push {value!r}: BASE is {len(base)} characters; keep it to {MAX_BASE_LENGTH} or fewer"
        )
    return PushTarget(owner, base)


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
