"""The upstream key stays with the proxy: the agent gets a placeholder and a credential-free environment.

`agentcap run` reads the key from its own environment, hides it from everything the agent can read
(our environment, the start-up environment that /proc shows, the agent's variables), and hands it
to mitmdump on an inherited pipe. The proxy swaps the placeholder for it on the way upstream.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from exporter.core.errors import AbortRun, UserError

PLACEHOLDER_PREFIX = "agentcap-placeholder-"
# Names of variables that usually hold credentials; withheld from the agent unless --pass-env names them.
CREDENTIAL_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|ACCESS_KEY|SECRET|TOKEN|PASSW(?:OR)?D|CREDENTIALS?)(?:_|$)", re.IGNORECASE
)


@dataclass(frozen=True)
class UpstreamKey:
    variable: str
    value: str = field(repr=False)

    def handover(self, placeholder: str, upstream: str) -> bytes:
        """What mitmdump reads from agentcap_upstream_key_fd."""
        return json.dumps({"placeholder": placeholder, "key": self.value, "upstream": upstream}).encode()


def new_placeholder() -> str:
    # Random per run: a process that did not get it from us cannot borrow the key through the proxy.
    return PLACEHOLDER_PREFIX + secrets.token_hex(16)


def read_upstream_key(variable: str) -> UpstreamKey:
    value = os.environ.get(variable, "")
    if not value.strip():
        raise UserError(
            f"{variable} is not set: export the upstream API key in it, name another variable with "
            "--upstream-key-env, or pass --no-key for an upstream that needs none"
        )
    return UpstreamKey(variable, value)


def isolate_environment(
    key: UpstreamKey | None, pass_env: Collection[str]
) -> tuple[dict[str, str], list[str]]:
    """The environment the agent and the proxy get, and the names withheld from it.

    Withheld: the key (under any name) and every credential-looking variable not in `pass_env`. They
    also leave this process: os.environ, and the start-up block that /proc/<pid>/environ shows.
    """
    kept, withheld = {}, []
    for name, value in os.environ.items():
        if (key is not None and key.value in value) or (
            CREDENTIAL_NAME.search(name) and name not in pass_env
        ):
            withheld.append(name)
        else:
            kept[name] = value
    for name in withheld:
        del os.environ[name]
    _blank_startup_environment(set(withheld), key.value.encode() if key else None)
    return kept, sorted(withheld)


def _blank_startup_environment(names: Collection[str], secret: bytes | None) -> None:
    """Overwrite the values of `names`, and any value holding `secret`, in the start-up environment block.

    /proc/<pid>/environ shows that block, not os.environ, and the agent (our child, same user) may
    read its parent's. Linux keeps it between env_start and env_end of /proc/self/stat.
    """
    environ = Path("/proc/self/environ")
    if not environ.exists():
        return  # no /proc: nothing shows the start-up block this way
    stat = Path("/proc/self/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd on; env_start is the 50th
    start, end = int(fields[47]), int(fields[48])
    offset = 0
    for entry in ctypes.string_at(start, end - start).split(b"\0"):
        name, equals, value = entry.partition(b"=")
        if equals and value and (name.decode("utf-8", "replace") in names or (secret and secret in value)):
            ctypes.memset(start + offset + len(name) + 1, ord("x"), len(value))
        offset += len(entry) + 1
    if secret and secret in environ.read_bytes():
        raise AbortRun("could not remove the upstream key from this process's start-up environment")
