"""Names: dataset names on the Hub (the one OWNER/NAME rule), slugs, providers, parquet file names."""

import hashlib
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from huggingface_hub.errors import HfUriError, HFValidationError
from huggingface_hub.utils import parse_hf_uri, validate_repo_id

from exporter.core.errors import UserError

_OUTSIDE_SLUG = re.compile(r"[^A-Za-z0-9._-]")
_REPEATED_DASH = re.compile(r"-{2,}")

# Hosts whose provider is not their second-level label (first match wins, as in the reference).
KNOWN_PROVIDERS: dict[str, str] = {
    "router.huggingface.co": "hf-router",
    "api.openai.com": "openai",
    "api.together.xyz": "together",
    "api.anthropic.com": "anthropic",
    "api.cerebras.ai": "cerebras",
    "api.fireworks.ai": "fireworks",
    "api.groq.com": "groq",
}


def slug(text: str) -> str:
    """A file-name-safe part: org prefix dropped, `[^A-Za-z0-9._-]` → `-`, repeats collapsed, ends trimmed.

    `org/gemma-4-E4B-it` → `gemma-4-E4B-it`; `--weird--` → `weird`; an empty result becomes `x`.
    """
    last = text.rsplit("/", 1)[-1]
    cleaned = _REPEATED_DASH.sub("-", _OUTSIDE_SLUG.sub("-", last)).strip("-_.")
    return cleaned or "x"


def provider_for(upstream_url: str | None, model: str | None = None) -> str:
    """The provider behind an upstream: a known host, `local` for loopback/private, else its domain label."""
    host = (urlsplit(upstream_url or "").hostname or "").lower().strip("[]")
    if not host:
        return "unknown"
    provider = KNOWN_PROVIDERS.get(host) or _provider_for_host(host)
    # The HF router picks a sub-provider from a `model:provider` suffix; keep that distinction.
    if provider == "hf-router" and model and ":" in model:
        provider = f"hf-router/{model.split(':', 1)[1]}"
    return provider


def _provider_for_host(host: str) -> str:
    if host in ("localhost", "::1") or host.endswith(".localhost"):
        return "local"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        return labels[-2] if len(labels) >= 2 else labels[0]
    if address.is_loopback or address.is_private or address.is_link_local:
        return "local"
    return host


SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"  # the reproducible-builds convention: fixes the stamp


def captures_repo(base: str) -> str:
    """The export's dataset repos are named from its BASE: `<base>-captures`, `<base>-<agent>-traces`,
    `<base>-rollouts` (the cards link each other by these names)."""
    return f"{base}-captures"


def traces_repo(base: str, agent: str) -> str:
    return f"{base}-{agent}-traces"


def sessions_repo(base: str) -> str:
    return f"{base}-sessions"


def rollouts_repo(base: str) -> str:
    return f"{base}-rollouts"


@dataclass(frozen=True)
class ExportStamp:
    """What tells two exports of the same runs apart, minted once by the export's driver.

    Every worker names and labels its files from this one value, so the output does not depend on
    which engine or how many workers built it. With $SOURCE_DATE_EPOCH set, the stamp (and so every
    byte of the output) is reproducible.
    """

    time: datetime
    nonce: str  # random per export: two exports in the same second still name their files apart

    @classmethod
    def mint(cls) -> "ExportStamp":
        fixed = os.environ.get(SOURCE_DATE_EPOCH)
        if fixed and fixed.isdigit():
            return cls(datetime.fromtimestamp(int(fixed), UTC), nonce=f"epoch-{fixed}")
        return cls(datetime.now(UTC).replace(microsecond=0), nonce=secrets.token_hex(8))

    @property
    def timestamp(self) -> str:
        """The UTC timestamp part of file names: `20261121T081500`."""
        return self.time.strftime("%Y%m%dT%H%M%S")

    @property
    def exported_at(self) -> str:
        return self.time.isoformat(timespec="seconds")

    def file_hex(self, key: str) -> str:
        """Six hex digits for the file named by `key` (unique within the export) in this export."""
        return hashlib.sha256(f"{self.nonce}\0{key}".encode()).hexdigest()[:6]


def parquet_filename(
    *, agent: str, model: str, provider: str, stamp: ExportStamp, key: str, kind: str = "train"
) -> str:
    """`data/train-<agent>-<model>-<provider>-<utc>-<hex>.parquet`; unknown (empty) parts are left out.

    The hex (from the export's stamp and `key`, which tells the export's files apart) keeps two
    files of one export, or two exports in the same second, apart.
    """
    # The model's org is dropped by slug(); the provider's `hf-router/<sub>` keeps both halves.
    named = (agent, model, provider.replace("/", "-"))
    parts = [kind, *(slug(part) for part in named if part)]
    parts += [stamp.timestamp, stamp.file_hex(key)]
    return "data/" + "-".join(parts) + ".parquet"


# --- dataset names ---------------------------------------------------------------------------------

NAME_FORMS = "OWNER/NAME, hf://datasets/OWNER/NAME or https://huggingface.co/datasets/OWNER/NAME"
# The longest suffix an export appends to BASE: "-<agent>-traces" with a long agent name still has to fit.
MAX_BASE_LENGTH = 60


@dataclass(frozen=True)
class DatasetName:
    owner: str
    name: str
    revision: str | None = None

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"


def parse_dataset_name(text: str, *, option: str) -> DatasetName:
    """A dataset on the Hub, by the Hub's own rules (huggingface_hub's URI parser and `validate_repo_id`).

    Accepted everywhere a dataset is named: `OWNER/NAME`, `hf://datasets/OWNER/NAME[@REVISION]`,
    and a Hub URL such as `https://huggingface.co/datasets/OWNER/NAME`. `option` names the flag
    or argument in the one-line error.
    """
    value = text.strip()
    if value.startswith("hf://") or _is_hub_url(value):
        try:
            uri = parse_hf_uri(value, endpoint=os.environ.get("HF_ENDPOINT"))
        except HfUriError as error:
            raise UserError(f"{option} {text!r}: {_reason(error)}; expected {NAME_FORMS}") from None
        if uri.type != "dataset" or uri.path_in_repo:
            what = "a file in a repo" if uri.path_in_repo else f"a {uri.type} repo"
            raise UserError(f"{option} {text!r}: names {what}, not a dataset; expected {NAME_FORMS}")
        repo_id, revision = uri.id, uri.revision
    else:
        repo_id, revision = value.strip("/"), None
        if repo_id.count("/") != 1:
            raise UserError(f"{option} {text!r}: expected {NAME_FORMS} (e.g. my-org/agent-runs)")
        try:
            validate_repo_id(repo_id)
        except HFValidationError as error:
            raise UserError(f"{option} {text!r}: {_reason(error)}; expected {NAME_FORMS}") from None
    owner, _, name = repo_id.partition("/")
    return DatasetName(owner, name, revision)


def parse_export_name(text: str, *, option: str) -> DatasetName:
    """OWNER/BASE of an export: a dataset name (`parse_dataset_name`) short enough for every suffix.

    `--name` and `--push` both go through here: the local output is exactly what a push would
    publish, so a name one accepts the other accepts too.
    """
    name = parse_dataset_name(text, option=option)
    if name.revision is not None:
        raise UserError(f"{option} {text!r}: an export writes the main branch; drop @{name.revision}")
    if len(name.name) > MAX_BASE_LENGTH:
        raise UserError(
            f"{option} {text!r}: BASE is {len(name.name)} characters; keep it to {MAX_BASE_LENGTH} or fewer"
        )
    return name


def _is_hub_url(text: str) -> bool:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "").hostname
    return parts.hostname.lower() in {"huggingface.co", "hf.co", endpoint}


def _reason(error: Exception) -> str:
    """huggingface_hub's reason without the value it quotes (our message quotes what the user typed)."""
    text = _URI_PREFIX.sub("", str(error)).split(" Expected format")[0]
    return _QUOTED_SUFFIX.sub("", text.strip()).rstrip(".")


_URI_PREFIX = re.compile(r"^Invalid HF URI '[^']*'\.\s*")
_QUOTED_SUFFIX = re.compile(r"(:|, got)?\s*'[^']*'\.?$")  # huggingface_hub ends with the value it refused
