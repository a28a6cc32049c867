"""The capture contract: one `captures.jsonl` line and `run.json`, as typed structs (docs/capture-format.md).

Every reader of a run decodes through this module, and the addon's own lines are held to it by
tests/test_capture_contract.py, which records calls of every kind through the real addon and
validates each line with `validate_record` (the addon itself stays stdlib-only, so the test also
checks that its schema strings are the ones below).

- `CaptureRecord` is the record, every field typed. Readers that browse or normalise calls
  (inspect, rollouts, traces) decode it; bodies and the raw stream stay `msgspec.Raw` (the JSON
  text exactly as written) until someone needs them parsed.
- `RawRecord` and `IndexRecord` are views of the same record for the export's fast path: they
  keep `usage`, `error` and `websocket` as the bytes the addon wrote (copied into parquet as they
  are), and `IndexRecord` parses nothing of a request body but its `model`.
- `call_failed` is the one rule for a failed call, used by every command and dataset.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec

CAPTURE_SCHEMA: Final = "agentcap.capture/1"
"""The `schema` of every capture record this version reads and the addon writes."""
RUN_SCHEMA: Final = "agentcap.run/1"
"""The `schema` of `run.json`."""

CAPTURES_FILE: Final = "captures.jsonl"
RUN_FILE: Final = "run.json"
TRACES_DIR: Final = "traces"

APIS: Final = (
    "chat.completions",
    "responses",
    "messages",
    "completions",
    "gemini.generate_content",
    "custom",
)
TRANSPORTS: Final = ("http", "websocket")
ERROR_KINDS: Final = (
    "upstream_unreachable",
    "upstream_reset",
    "client_disconnected",
    "timeout",
    "shutdown",
    "proxy_error",
)
RUN_STATUSES: Final = ("running", "complete", "interrupted")

# Numbers must fit their parquet column: a value that does not (a turn of 10**40 in an old file) makes
# the line malformed, reported like any other, instead of an OverflowError half-way through a file.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
# Seconds since 1970 whose microseconds fit the int64 timestamp column (years 1 to 9999 and more).
Epoch = Annotated[float, msgspec.Meta(ge=-6e10, le=2.5e11)]

MISSING: Final = msgspec.Raw()
"""An absent JSON-valued field: distinguishable from a JSON `null` (see `present`)."""


def present(raw: msgspec.Raw) -> bool:
    """A JSON-valued field that is there and not `null`."""
    return len(raw) > 0 and bytes(raw) != b"null"


def call_failed(*, error: bool, status_code: int | None) -> bool:
    """The one rule for a failed call, in `ls`, `inspect`, rollouts and the datasets alike.

    A call failed when the proxy recorded an `error` (unreachable, reset, client gone, timeout,
    shutdown), when no response arrived (no status), or when the upstream answered with an HTTP
    status >= 400. A WebSocket connection (status 101) that closed without an error did not fail.
    """
    return error or status_code is None or status_code >= 400


# --- the record ---------------------------------------------------------------------------------


class CallError(msgspec.Struct, forbid_unknown_fields=True):
    """Why a call did not complete: `kind` is one of ERROR_KINDS."""

    kind: str
    message: str


class Message(msgspec.Struct, kw_only=True):
    """`request` or `response`: headers and the decoded body (one of `body`, `body_text`, `body_base64`),
    or for a streamed response the stream text (`raw`, or `raw_base64` when it is not UTF-8)."""

    headers: list[tuple[str, str]] = []
    status_code: Int32 | None = None  # response only
    content_encoding: str | None = None
    size: int | None = None
    wire_size: int | None = None
    stream: bool = False  # response only
    body: msgspec.Raw = MISSING  # any JSON value, as the text that travelled
    body_text: str | None = None
    body_base64: str | None = None
    decode_error: str | None = None
    raw: msgspec.Raw = MISSING  # a JSON string: the SSE text (kept raw: it can be megabytes)
    raw_base64: str | None = None

    def body_json(self) -> Any:
        """The JSON body parsed (None when there is none)."""
        return msgspec.json.decode(self.body) if len(self.body) else None

    def as_dict(self) -> dict[str, Any]:
        """The message as its JSON object, bodies parsed; fields the line does not have are left out."""
        data: dict[str, Any] = {
            "headers": [list(pair) for pair in self.headers],
            "content_encoding": self.content_encoding,
            "size": self.size,
            "wire_size": self.wire_size,
        }
        if self.status_code is not None:
            data["status_code"], data["stream"] = self.status_code, self.stream
        for key in ("body", "raw"):
            value: msgspec.Raw = getattr(self, key)
            if len(value):
                data[key] = msgspec.json.decode(value)
        for key in ("body_text", "body_base64", "decode_error", "raw_base64"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


class WebSocketFrame(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sender: str = msgspec.field(name="from")  # "client" | "server"
    timestamp: float
    text: str | None = None
    base64: str | None = None


class WebSocketLog(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    messages: list[WebSocketFrame]
    close_code: int | None = None
    close_reason: str | None = None
    closed_by_client: bool | None = None


class RecordHead(msgspec.Struct, kw_only=True):
    """The fields every reader needs, validated on every line it reads."""

    schema: str
    request_id: str
    seq: Int64
    captured_at: Epoch
    run_id: str | None = None
    agent: str | None = None
    task_id: str | None = None
    turn: Int64 | None = None
    api: str | None = None
    transport: str = "http"
    upstream_url: str | None = None
    url: str | None = None
    served_model: str | None = None


class RecordBody(RecordHead, kw_only=True):
    """The head plus timings and messages: what the full record and the export's view share."""

    ttfb_ms: float | None = None
    duration_ms: float | None = None
    request: Message | None = None
    response: Message | None = None
    served_by: str | None = None
    served_build_info: str | None = None

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response else None


class CaptureRecord(RecordBody, kw_only=True):
    """One `captures.jsonl` line: one LLM call (or one Responses WebSocket connection)."""

    method: str | None = None
    http_version: str | None = None
    usage: dict[str, Any] | None = None
    error: CallError | None = None
    websocket: WebSocketLog | None = None  # only for transport "websocket"

    @property
    def failed(self) -> bool:
        return call_failed(error=self.error is not None, status_code=self.status_code)

    def request_body(self) -> dict[str, Any]:
        """The request body when it is a JSON object, else {}."""
        body = self.request.body_json() if self.request else None
        return body if isinstance(body, dict) else {}

    def request_model(self) -> str | None:
        """The model asked for: the request body's `model` (read without building the rest of the
        body), else the one the URL names (Gemini)."""
        return body_model(self.request.body if self.request else MISSING) or model_in_url(self.url)

    def model(self) -> str:
        """The requested model, else the served one, else "" (the rule the captures dataset files by)."""
        return self.request_model() or self.served_model or ""


class RawRecord(RecordBody, kw_only=True):
    """The export's view: the JSON-valued fields stay the bytes the addon wrote (copied, never re-encoded)."""

    usage: msgspec.Raw = MISSING
    error: msgspec.Raw = MISSING
    websocket: msgspec.Raw = MISSING

    @property
    def failed(self) -> bool:
        return call_failed(error=present(self.error), status_code=self.status_code)


# Gemini names the model in the path (`/v1beta/models/<model>:generateContent`), not in the body.
_URL_MODEL = re.compile(r"/models/([^/:?]+):\w+")


def model_in_url(url: str | None) -> str | None:
    found = _URL_MODEL.search(url or "")
    return found.group(1) if found else None


class ModelProbe(msgspec.Struct):
    model: object = None


def body_model(body: msgspec.Raw) -> str | None:
    """A request body's `model`, read without building the rest of the body; None when it has none."""
    if not len(body):
        return None
    try:
        model = msgspec.json.decode(body, type=ModelProbe).model
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # not an object
    return model if isinstance(model, str) and model else None


class IndexRequest(msgspec.Struct):
    # A body is any JSON value; only an object can name a model.
    body: ModelProbe | list[Any] | str | int | float | bool | None = None


class IndexRecord(RecordHead, kw_only=True):
    """The export's first pass: the head and the request's `model`; the rest of the body is skipped."""

    request: IndexRequest | None = None

    def model(self) -> str:
        """The requested model (body, else URL), else the served one, else ""."""
        body = self.request.body if self.request else None
        model = body.model if isinstance(body, ModelProbe) else None
        if isinstance(model, str) and model:
            return model
        return model_in_url(self.url) or self.served_model or ""


# --- run.json -----------------------------------------------------------------------------------


class RunCounts(msgspec.Struct, kw_only=True):
    """`recorded` lines, `failed` ones (the failed-call rule), those with an `error`, those answered >= 400,
    relayed non-LLM requests, lost calls. `failed` is absent (0) in files of agentcap < 0.2."""

    recorded: int = 0
    failed: int = 0
    errors: int = 0
    http_errors: int = 0
    passthrough: int = 0
    lost: int = 0


class RunInfo(msgspec.Struct, kw_only=True):
    """`run.json`. Every field is optional to a reader: a missing or damaged file reads as `RunInfo()`."""

    schema: str | None = None
    run_id: str | None = None
    agent: str | None = None
    status: str | None = None  # one of RUN_STATUSES
    started_at: str | None = None  # ISO-8601 UTC
    ended_at: str | None = None
    upstreams: list[str] = []
    counts: RunCounts = msgspec.field(default_factory=RunCounts)
    addon_version: str | None = None
    mitmproxy_version: str | None = None


def read_run_info(data: bytes) -> RunInfo:
    """`run.json` bytes → RunInfo; anything unreadable reads as an empty RunInfo (the captures still count)."""
    try:
        return msgspec.json.decode(data, type=RunInfo)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return RunInfo()


# --- validation: what the addon must write ------------------------------------------------------

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_MESSAGE_KEYS = frozenset(Message.__struct_fields__) - {"status_code", "stream"}
_RESPONSE_KEYS = frozenset(Message.__struct_fields__)
_BODY_KEYS = ("body", "body_text", "body_base64")


class ContractError(ValueError):
    """A line the addon wrote breaks the capture contract."""


def validate_record(line: bytes) -> CaptureRecord:
    """Decode one line and check it against the whole contract: types, every key present and none
    unknown, one body form, a stream's text, the WebSocket log for WebSocket calls, the error kinds."""
    try:
        record = msgspec.json.decode(line, type=CaptureRecord)
        generic = msgspec.json.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ContractError(str(error)) from error
    expected = set(CaptureRecord.__struct_fields__) - ({"websocket"} if record.transport == "http" else set())
    _same_keys("record", generic, expected)
    _check(record.schema == CAPTURE_SCHEMA, f"schema {record.schema!r}")
    _check(_REQUEST_ID.fullmatch(record.request_id) is not None, f"request_id {record.request_id!r}")
    _check(record.seq >= 1, f"seq {record.seq}")
    _check(record.api in APIS, f"api {record.api!r}")
    _check(record.transport in TRANSPORTS, f"transport {record.transport!r}")
    _check(record.error is None or record.error.kind in ERROR_KINDS, f"error kind {record.error!r}")
    _check(record.request is not None, "no request")
    _check((record.websocket is not None) == (record.transport == "websocket"), "websocket log vs transport")
    _check(record.response is not None or record.ttfb_ms is None, "ttfb without a response")
    _message_keys("request", generic["request"], _MESSAGE_KEYS)
    if record.response is not None:
        _message_keys("response", generic["response"], _RESPONSE_KEYS)
        _check(record.response.status_code is not None, "response without status_code")
        if record.response.stream:
            forms = [key for key in ("raw", "raw_base64") if key in generic["response"]]
            _check(len(forms) == 1, f"stream text as {forms}")
            _check(not any(key in generic["response"] for key in _BODY_KEYS), "stream with a body")
    return record


def validate_run_info(data: bytes) -> RunInfo:
    """`run.json` against the contract: every key present, none unknown, known schema and status."""
    try:
        info = msgspec.json.decode(data, type=RunInfo)
        generic = msgspec.json.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ContractError(str(error)) from error
    _same_keys("run.json", generic, set(RunInfo.__struct_fields__))
    _same_keys("run.json counts", generic["counts"], set(RunCounts.__struct_fields__))
    _check(info.schema == RUN_SCHEMA, f"run.json schema {info.schema!r}")
    _check(info.status in RUN_STATUSES, f"run.json status {info.status!r}")
    return info


def _message_keys(label: str, message: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(message) - allowed
    _check(not unknown, f"{label}: unknown keys {sorted(unknown)}")
    required = {"headers", "content_encoding", "size", "wire_size"} | (allowed - _MESSAGE_KEYS)
    _check(required <= set(message), f"{label}: missing {sorted(required - set(message))}")
    _check(sum(key in message for key in _BODY_KEYS) <= 1, f"{label}: more than one body form")


def _same_keys(label: str, generic: object, expected: set[str]) -> None:
    _check(isinstance(generic, dict), f"{label} is not an object")
    assert isinstance(generic, dict)
    missing, unknown = expected - set(generic), set(generic) - expected
    _check(not missing and not unknown, f"{label}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ContractError(what)
