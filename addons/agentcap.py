"""agentcap: record every LLM call an agent makes, one JSON line per call.

Put mitmproxy in front of the agent's model endpoint and load this script:

    mitmdump -s addons/agentcap.py --mode reverse:https://api.openai.com \
        --listen-host 127.0.0.1 -p 8080 --set agentcap_agent=opencode

Each POST to an LLM API path (OpenAI chat completions / Responses / legacy completions,
Anthropic Messages, Gemini generateContent) is relayed unchanged - streams pass through unbuffered - and written to
`<agentcap_dir>/<run-id>/captures.jsonl` when it ends. Credentials never reach the disk.
The record format is documented in docs/capture-format.md.

Durability: when a call ends, its snapshot (credentials already masked) is committed to an
append-only journal in `<agentcap_dir>/.spool/` before mitmproxy sends the end of the response to
the agent. A writer process turns the journal into JSON lines; if the proxy is killed the writer
finishes the journal, if the writer is killed the proxy starts another that resumes it, and if
both die the next proxy started on the same directory replays it.

Self-contained on purpose: mitmproxy and the standard library only, so it runs under
whatever mitmdump the user has.
"""

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import marshal
import os
import re
import secrets
import select
import stat
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from mitmproxy import ctx, exceptions, http
from mitmproxy.net import encoding as content_encoding
from mitmproxy.net.http.url import parse_authority
from mitmproxy.proxy.mode_specs import ReverseMode
from mitmproxy.version import VERSION as MITMPROXY_VERSION

ADDON_VERSION = "0.2.0"
CAPTURE_SCHEMA = "agentcap.capture/1"
RUN_SCHEMA = "agentcap.run/1"

# Suffix rules: they match with or without /v1, behind gateways that add a prefix
# (Azure deployments, OpenRouter's /api/v1, ChatGPT's /backend-api/codex), with a trailing slash.
DEFAULT_PATHS = (
    r"/chat/completions/?$",
    r"/responses/?$",
    r"/messages/?$",
    r"/completions/?$",
    r"/models/[^/]+:(stream)?[gG]enerateContent$",  # Gemini: the model is in the path
)
API_BY_SUFFIX = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/messages", "messages"),
    ("/completions", "completions"),
    (":generateContent", "gemini.generate_content"),
    (":streamGenerateContent", "gemini.generate_content"),
)
# A header or query parameter carries a credential when its lowercased name is one of these or ends in
# one of the suffixes (x-goog-api-key, x-amz-security-token, x-portkey-api-key, cf-access-client-secret).
CREDENTIAL_NAMES = frozenset(
    {
        # headers
        "authorization",
        "proxy-authorization",
        "api-key",
        "cookie",
        "set-cookie",
        "www-authenticate",
        "proxy-authenticate",
        "ocp-apim-subscription-key",
        # query parameters
        "key",
        "api_key",
        "token",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
    }
)
CREDENTIAL_SUFFIXES = ("-api-key", "_api_key", "apikey", "-token", "_token", "-secret", "_secret")
QUERY_SEPARATORS = re.compile(r"([&;])")
TAG_HEADER_PREFIX = b"x-agentcap-"
CONTROL_PREFIX = "/_agentcap/"
CONTROL_TOKEN_HEADER = "x-agentcap-token"
MAX_TAG_LENGTH = 128
MAX_TURN = 2**63 - 1  # turn is an int64 column downstream
RUN_JSON_INTERVAL_S = 1.0  # while calls keep arriving
IDLE_PERSIST_S = 0.1  # once they pause
WRITER_FLAG = "--agentcap-writer"
KEY_FILE = ".fingerprint-key"
CAPTURES_FILE = "captures.jsonl"
RUN_FILE = "run.json"
SPOOL_DIR = ".spool"
SEGMENT_BYTES = 16 * 1024 * 1024
CONTROL_RESERVE = 256 * 1024  # kept free in every segment for the final tallies and the close frame
FRAME = struct.Struct(">II")  # payload length, length ^ FRAME_CHECK
FRAME_CHECK = 0x5A17C0DE
MAX_OPEN_CAPTURES = 32
WRITER_RESTARTS = 3  # within WRITER_RESTART_WINDOW_S; after that the writer runs in the proxy
WRITER_RESTART_WINDOW_S = 60.0
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)

log = logging.getLogger("agentcap")


class AgentCapError(Exception):
    """A problem the user can fix, said in one line (never a traceback)."""


# ==================================================================================================
# The addon: options and hooks
# ==================================================================================================


class AgentCap:
    """The addon: tags LLM calls, tees their bodies and hands finished calls to the writer."""

    def __init__(self) -> None:
        self.last_seq: dict[str, int] = {}  # run id -> last seq handed out; the writer owns the files
        self.main_run_id: str | None = None
        self.context: dict[str, Any] = {"run": None, "task": None, "turn": None}
        self.path_patterns: list[re.Pattern[str]] = [re.compile(p) for p in DEFAULT_PATHS]
        self.calls: dict[str, CallState] = {}  # flow id -> call in flight (kept off flow.metadata)
        self.recorder: Recorder | None = None
        self.redactor: Redactor | None = None
        self.base: Path | None = None
        self.base_fd: int | None = None
        self.problems: dict[str, str] = {}  # option (or "start") -> why the addon is not recording
        self.control_token = ""
        self.upstream_key: UpstreamKey | None = None

    # ------------------------------------------------------------ lifecycle
    def load(self, loader: Any) -> None:
        loader.add_option("agentcap_dir", str, "runs", "Directory that holds one sub-directory per run.")
        loader.add_option(
            "agentcap_run",
            str,
            "",
            "Run id (directory name) for this proxy. Default: <agent>-<UTC yyyymmddTHHMMSS>-<6 hex>, "
            "created exclusively so two runs never share a directory. An existing run is appended to.",
        )
        loader.add_option("agentcap_agent", str, "unknown", "Agent behind this proxy, e.g. opencode.")
        loader.add_option(
            "agentcap_paths",
            Sequence[str],
            list(DEFAULT_PATHS),
            "Regular expressions searched in the request path (query excluded); a POST whose path matches "
            "one is recorded as an LLM call. Default: chat completions, Responses, Messages, legacy "
            "completions (with or without a /v1 prefix) and Gemini (streamG|g)enerateContent.",
        )
        loader.add_option(
            "agentcap_redact_headers",
            Sequence[str],
            [],
            "Extra header names whose values are replaced by a keyed fingerprint, on top of the credential "
            "headers of the supported providers (authorization, cookie, www-authenticate, api-key, ...) and "
            "every name ending in -api-key, -token or -secret.",
        )
        loader.add_option(
            "agentcap_lazy_connect",
            bool,
            True,
            "Set mitmproxy's connection_strategy to lazy. With eager connections an unreachable upstream "
            "closes the agent's connection before the request is read: no answer and nothing to record. "
            "Lazy reads the request first, so the agent gets a 502 and the record says why.",
        )
        loader.add_option(
            "agentcap_control_token",
            str,
            "",
            "Require this value in the X-Agentcap-Token header of requests to the control endpoint "
            "(/_agentcap/context). 'auto' makes a random token and prints it at start. Empty: no token "
            "(the endpoint still only answers loopback, same-origin JSON requests).",
        )
        loader.add_option(
            "agentcap_upstream_key_fd",
            int,
            -1,
            "Inherited file descriptor holding JSON {placeholder, key, upstream}, read once at start-up "
            "(`agentcap run` sets it). Requests to that upstream get the key in place of the placeholder "
            "in their credential headers, so the agent never holds the real key.",
        )

    def configure(self, updated: set[str]) -> None:
        for name in sorted(updated):
            try:
                self.configure_option(name)
                self.problems.pop(name, None)
            except AgentCapError as exc:
                if self.recorder is not None:
                    raise exceptions.OptionsError(str(exc)) from None
                # At start-up a script's OptionsError is printed with a traceback; one line is enough,
                # and mitmdump exits on an error logged while it starts.
                self.problems[name] = str(exc)
                log.error("agentcap: error: %s", exc)

    def configure_option(self, name: str) -> None:
        value = getattr(ctx.options, name)
        if name == "agentcap_lazy_connect" and value:
            ctx.options.update(connection_strategy="lazy")
        elif name == "agentcap_paths":
            try:
                self.path_patterns = [re.compile(p) for p in value]
            except re.error as exc:
                raise AgentCapError(f"agentcap_paths: invalid regular expression: {exc}") from None
        elif name == "agentcap_run" and value and sanitize_tag(value) != value:
            raise AgentCapError(
                f"agentcap_run={value!r}: use letters, digits, '.', '_' and '-' only, "
                "not starting with '.' or '-'"
            )
        elif name == "agentcap_control_token":
            self.control_token = secrets.token_urlsafe(32) if value == "auto" else value
            if value == "auto":
                log.warning(
                    "agentcap: control endpoint token (send it as X-Agentcap-Token): %s", self.control_token
                )
        elif name == "agentcap_upstream_key_fd" and value >= 0:
            self.upstream_key = UpstreamKey.read(value)
        elif name in ("agentcap_dir", "agentcap_redact_headers") and self.recorder is not None:
            log.warning("agentcap: agentcap_dir/agentcap_redact_headers changes apply after a restart")

    def running(self) -> None:
        self.ensure_started()
        self.warn_if_open_relay()

    def done(self) -> None:
        if self.recorder is None:
            return
        now = time.time()
        for state in list(self.calls.values()):
            assert state.flow is not None
            self.finish(
                state.flow, {"kind": "shutdown", "message": "proxy shut down before the call ended"}, now
            )
        self.recorder.close("complete")
        self.recorder = None
        if self.base_fd is not None:
            os.close(self.base_fd)
            self.base_fd = None

    # ------------------------------------------------------------ HTTP hooks
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.ensure_started()
        if flow.response is not None or self.recorder is None:
            return  # already answered by mitmproxy (proxyauth's 407/401), or not recording at all
        request = flow.request
        if self.upstream_key is not None:
            self.upstream_key.swap(request, ctx.options.agentcap_redact_headers)
        path = request.path.split("?", 1)[0]
        if path.startswith(CONTROL_PREFIX):
            return  # answered in `request`
        # Tags are ours, not the upstream's: read them, then strip them before the request is forwarded.
        # One pass over the raw fields: this runs for every request the proxy sees.
        fields = request.headers.fields
        tag_fields = [
            (name, value)
            for name, value in fields
            if name[: len(TAG_HEADER_PREFIX)].lower() == TAG_HEADER_PREFIX
        ]
        tags: dict[str, str] = {}
        if tag_fields:
            request.headers.fields = tuple(field for field in fields if field not in tag_fields)
            for name, value in tag_fields:
                text = value.decode("utf-8", "replace").strip()
                if text:  # empty (an unset env var in the agent's config) means "not given": context applies
                    tags[name[len(TAG_HEADER_PREFIX) :].decode("latin-1").lower()] = text
        run_id = self.run_for(tags.get("run"))
        method = request.method
        is_call = method == "POST" or (
            method == "GET" and request.headers.get("upgrade", "").lower() == "websocket"
        )
        if not is_call or not any(pattern.search(path) for pattern in self.path_patterns):
            self.recorder.passthrough(run_id)
            return
        task = sanitize_tag(tags["task"]) if "task" in tags else self.context["task"]
        turn = parse_turn(tags["turn"]) if "turn" in tags else self.context["turn"]
        self.last_seq[run_id] += 1  # only the event loop touches it
        self.calls[flow.id] = CallState(
            request_id=uuid.uuid4().hex,
            seq=self.last_seq[run_id],
            run_id=run_id,
            task_id=task,
            turn=turn,
            api=api_for_path(path.rstrip("/")),
            started_at=request.timestamp_start or time.time(),
            flow=flow,
        )

    def request(self, flow: http.HTTPFlow) -> None:
        # flow.response is already set when proxyauth rejected the client: the endpoint stays protected.
        if (
            flow.response is None
            and flow.request.path.startswith(CONTROL_PREFIX)
            and self.recorder is not None
        ):
            flow.response = self.control_response(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = self.calls.get(flow.id)
        if state is None or flow.response is None:
            return
        # Appended as a raw field: a keyed assignment would scan every header first.
        flow.response.headers.fields += ((b"X-Agentcap-Request-Id", state.request_id.encode()),)
        content_type = flow.response.headers.get("content-type", "").lower()
        # Also take over when another addon (stream_large_bodies) already chose streaming:
        # the tee forwards identically and keeps the copy that plain streaming would lose.
        if content_type.startswith("text/event-stream") or flow.response.stream:
            state.streamed = True
            flow.response.stream = state.tee

    def response(self, flow: http.HTTPFlow) -> None:
        # mitmproxy sends the end of the response only after this hook: the call is journaled first.
        if flow.id in self.calls and flow.websocket is None:
            self.finish(flow, None, time.time())

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.id in self.calls:
            self.finish(flow, classify_error(flow), time.time())

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        if flow.id in self.calls:
            self.finish(flow, None, time.time())

    # ------------------------------------------------------------ internals
    def ensure_started(self) -> None:
        if self.recorder is not None or self.problems:
            return
        try:
            self.start()
        except AgentCapError as exc:
            self.problems["start"] = str(exc)
            log.error("agentcap: error: %s", exc)
            if self.base_fd is not None:
                os.close(self.base_fd)
                self.base_fd = None

    def start(self) -> None:
        self.base = base = Path(ctx.options.agentcap_dir)
        self.base_fd = base_fd = open_base(base)
        self.redactor = Redactor(Redactor.load_key(base_fd, base), ctx.options.agentcap_redact_headers)
        try:
            replay_orphans(base_fd, base)
            recorder = Recorder(base, base_fd)
        except OSError as exc:
            raise AgentCapError(f"agentcap_dir={base}: cannot write the journal ({exc.strerror})") from None
        self.recorder = recorder
        agent = sanitize_tag(ctx.options.agentcap_agent) or "unknown"
        try:
            if ctx.options.agentcap_run:
                run_id = self.open_run(ctx.options.agentcap_run)
            else:
                run_id = self.create_unique_run(agent)
        except (AgentCapError, OSError):
            self.recorder = None
            recorder.close("complete")
            raise
        self.main_run_id = run_id
        log.info("agentcap: recording %s calls into %s", agent, base / run_id / CAPTURES_FILE)

    def create_unique_run(self, agent: str) -> str:
        assert self.base_fd is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        while True:
            run_id = f"{agent}-{stamp}-{secrets.token_hex(3)}"
            try:
                os.mkdir(run_id, 0o700, dir_fd=self.base_fd)
            except FileExistsError:
                continue
            return self.register_run(run_id, seq=0)

    def open_run(self, run_id: str) -> str:
        """Create or reuse a run directory; a planted link or unreadable file is refused (AgentCapError)."""
        assert self.base_fd is not None and self.base is not None
        try:
            os.mkdir(run_id, 0o700, dir_fd=self.base_fd)
            return self.register_run(run_id, seq=0)
        except FileExistsError:
            pass
        run_fd = open_run_dir(self.base_fd, self.base, run_id)
        try:
            seq = existing_max_seq(run_fd, self.base / run_id)
        finally:
            os.close(run_fd)
        log.info("agentcap: appending to existing run %s", run_id)
        return self.register_run(run_id, seq)

    def register_run(self, run_id: str, seq: int) -> str:
        assert self.recorder is not None
        self.last_seq[run_id] = seq
        self.recorder.open_run(run_id, sanitize_tag(ctx.options.agentcap_agent) or "unknown")
        return run_id

    def run_for(self, header_run: str | None) -> str:
        """Header beats context beats the proxy's own run; a run that cannot be opened falls back to ours."""
        requested = sanitize_tag(header_run) if header_run is not None else self.context["run"]
        run_id = requested or self.main_run_id
        assert run_id is not None and self.main_run_id is not None
        if run_id not in self.last_seq:
            try:
                self.open_run(run_id)
            except (AgentCapError, OSError) as exc:
                log.error(
                    "agentcap: cannot use run %s (%s); filing its calls in %s", run_id, exc, self.main_run_id
                )
                return self.main_run_id
        return run_id

    def control_refusal(self, flow: http.HTTPFlow) -> str | None:
        """Why a control request may come from a web page (or lacks the token), or None when it may not."""
        request = flow.request
        # In reverse mode mitmproxy replaces the Host header with the upstream's before any hook runs.
        host_rewritten = (
            isinstance(flow.client_conn.proxy_mode, ReverseMode) and not ctx.options.keep_host_header
        )
        if not host_rewritten:
            host, _ = parse_authority(request.host_header or request.host, check=False)
            if not is_loopback(host):
                return "refused: the Host must be 127.0.0.1, ::1 or localhost (DNS rebinding)"
        origin = request.headers.get("origin")
        if origin is not None and not is_loopback(urlsplit(origin).hostname or ""):
            return f"refused: a request with Origin {origin[:80]} comes from a web page"
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                return "refused: send the body with Content-Type: application/json"
        if self.control_token and not hmac.compare_digest(
            request.headers.get(CONTROL_TOKEN_HEADER, "").encode(), self.control_token.encode()
        ):
            return "refused: missing or wrong X-Agentcap-Token (see agentcap_control_token)"
        return None

    def control_response(self, flow: http.HTTPFlow) -> http.Response:
        """The out-of-band context endpoint; answered here, never forwarded upstream."""
        request = flow.request
        path = request.path.split("?", 1)[0].rstrip("/")
        if path != CONTROL_PREFIX + "context":
            return self.json_response(404, {"error": f"unknown endpoint {path}; use /_agentcap/context"})
        if request.method not in ("GET", "HEAD", "POST"):
            return self.json_response(405, {"error": "use GET or POST"})
        refusal = self.control_refusal(flow)
        if refusal is not None:
            log.warning("agentcap: control request %s", refusal)
            return self.json_response(403, {"error": refusal})
        if request.method == "POST":
            try:
                update = json.loads(request.get_content(strict=False) or b"{}")
                if not isinstance(update, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as exc:
                return self.json_response(400, {"error": f"body must be a JSON object: {exc}"})
            for key in ("run", "task", "turn"):
                for spelled in (key, f"{key}_id"):
                    if spelled in update:
                        value = update[spelled]
                        if key == "turn":
                            self.context[key] = parse_turn(value)
                        else:
                            self.context[key] = sanitize_tag(None if value is None else str(value))
            if self.context["run"]:
                self.context["run"] = self.run_for(self.context["run"])
        return self.json_response(200, dict(self.context))

    @staticmethod
    def json_response(status: int, payload: dict[str, Any]) -> http.Response:
        return http.Response.make(status, json.dumps(payload).encode(), {"content-type": "application/json"})

    def finish(self, flow: http.HTTPFlow, error: dict[str, str] | None, ended_at: float) -> None:
        state = self.calls.pop(flow.id, None)
        if state is None or self.recorder is None or self.redactor is None:
            return
        response = flow.response
        websocket = None
        if flow.websocket is not None:
            websocket = {
                "messages": [websocket_message(m) for m in flow.websocket.messages],
                "close_code": None if flow.websocket.close_code is None else int(flow.websocket.close_code),
                "close_reason": flow.websocket.close_reason,
                "closed_by_client": flow.websocket.closed_by_client,
            }
        response_raw: bytes | None = None
        if response is not None:
            response_raw = b"".join(state.chunks) if state.streamed else response.raw_content
        redactor = self.redactor
        snapshot = CallSnapshot(
            **state.identity(),
            method=flow.request.method,
            url=redactor.url(flow.request.url),
            upstream_url=upstream_of(flow.request),
            http_version=flow.request.http_version,
            request_headers=redactor.header_fields(flow.request.headers.fields),
            request_raw=flow.request.raw_content,
            response_status=None if response is None else response.status_code,
            response_headers=() if response is None else redactor.header_fields(response.headers.fields),
            response_raw=response_raw,
            response_streamed=state.streamed,
            response_started_at=None if response is None else response.timestamp_start,
            ended_at=ended_at,
            error=error,
            websocket=websocket,
        )
        state.chunks = []
        state.flow = None
        self.recorder.record(snapshot)

    def warn_if_open_relay(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        addresses = proxyserver.listen_addrs() if proxyserver else []
        exposed = [f"{host}:{port}" for host, port, *_ in addresses if not is_loopback(host)]
        if exposed and not ("proxyauth" in ctx.options and ctx.options.proxyauth):
            log.warning(
                "agentcap: WARNING: listening on %s without proxy authentication - anyone who can reach it "
                "can use your upstream through it and rewrite its tags. Use --listen-host 127.0.0.1 "
                "(in regular mode, --set proxyauth=user:pass also works; see docs/security.md).",
                ", ".join(exposed),
            )


# ==================================================================================================
# Call state: what the hooks keep about a call in flight and read from its flow
# ==================================================================================================


@dataclass
class CallIdentity:
    """Who a call is: fixed when its request headers arrive."""

    request_id: str
    seq: int
    run_id: str
    task_id: str | None
    turn: int | None
    api: str
    started_at: float

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CallIdentity.__dataclass_fields__}


@dataclass
class CallState(CallIdentity):
    """Everything the addon keeps about one recorded call while it is in flight (never in the flow)."""

    flow: http.HTTPFlow | None = None
    chunks: list[bytes] = field(default_factory=list)
    streamed: bool = False

    def tee(self, chunk: bytes) -> bytes:
        # Called by mitmproxy per received chunk; returning it unchanged forwards it at once.
        if chunk:
            self.chunks.append(chunk)
        return chunk


def sanitize_tag(value: str | None) -> str | None:
    """Make a header-supplied id safe to use as a directory name: never a path outside agentcap_dir."""
    if value is None:
        return None
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value.strip())[:MAX_TAG_LENGTH]
    cleaned = cleaned.lstrip(".-")
    return cleaned or None


def parse_turn(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        turn = int(str(value).strip())
    except ValueError:
        turn = -1
    if not 0 <= turn <= MAX_TURN:
        log.warning("agentcap: ignoring turn %.40r (expected an integer from 0 to 2**63-1)", value)
        return None
    return turn


def api_for_path(path: str) -> str:
    for suffix, api in API_BY_SUFFIX:
        if path.endswith(suffix):
            return api
    return "custom"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def classify_error(flow: http.HTTPFlow) -> dict[str, str]:
    message = flow.error.msg if flow.error else "unknown error"
    lowered = message.lower()
    server = flow.server_conn
    connected = server.timestamp_tcp_setup is not None and (
        not server.tls or server.timestamp_tls_setup is not None
    )
    if "client disconnected" in lowered or "client closed" in lowered:
        kind = "client_disconnected"
    elif "timeout" in lowered or "timed out" in lowered:
        kind = "timeout"
    elif flow.response is None and not connected:
        kind = "upstream_unreachable"  # no connection was ever made, whatever the message says
    elif any(word in lowered for word in ("peer closed", "reset", "incomplete", "disconnected", "closed")):
        kind = "upstream_reset"
    else:
        kind = "proxy_error"
    return {"kind": kind, "message": message}


def upstream_of(request: http.Request) -> str:
    host = f"[{request.host}]" if ":" in request.host else request.host
    default_port = {"http": 80, "https": 443}.get(request.scheme)
    port = "" if request.port == default_port else f":{request.port}"
    return f"{request.scheme}://{host}{port}"


def websocket_message(message: Any) -> dict[str, Any]:
    entry = {"from": "client" if message.from_client else "server", "timestamp": message.timestamp}
    if message.is_text:
        return entry | {"text": message.text}
    return entry | {"base64": base64.b64encode(message.content).decode("ascii")}


# ==================================================================================================
# Redaction: credentials are masked in the proxy, before anything reaches the disk
# ==================================================================================================


def is_credential_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in CREDENTIAL_NAMES or lowered.endswith(CREDENTIAL_SUFFIXES)


class Redactor:
    """Replaces credential values with a keyed fingerprint in the proxy, before anything is journaled."""

    def __init__(self, key: bytes, extra_headers: Sequence[str]) -> None:
        self.key = key
        self.extra = frozenset(name.strip().lower() for name in extra_headers if name.strip())
        self.verdicts: dict[bytes, bool] = {}  # raw header name -> is a credential; names repeat

    def is_credential(self, name: str) -> bool:
        return is_credential_name(name) or name.lower() in self.extra

    def mask(self, value: bytes) -> bytes:
        digest = hmac.new(self.key, value, hashlib.sha256).hexdigest()
        return f"<redacted:{digest[:12]}>".encode()

    def header_fields(self, fields: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
        verdicts = self.verdicts
        redacted = []
        for name, value in fields:
            verdict = verdicts.get(name)
            if verdict is None:
                verdict = self.is_credential(name.decode("latin-1"))
                if len(verdicts) < 4096:  # names come from the network: bound the memo
                    verdicts[name] = verdict
            redacted.append((name, self.mask(value)) if verdict else (name, value))
        return tuple(redacted)

    def url(self, url: str) -> str:
        """Credential query values masked; every other byte of the URL exactly as it travelled."""
        head, mark, query = url.partition("?")
        if not mark:
            return url
        pieces = QUERY_SEPARATORS.split(query)  # separators kept at odd indices
        for index in range(0, len(pieces), 2):
            name, equals, value = pieces[index].partition("=")
            if equals and value and self.is_credential(unquote(name)):
                pieces[index] = f"{name}={self.mask(unquote_to_bytes(value)).decode()}"
        return f"{head}?{''.join(pieces)}"

    @staticmethod
    def load_key(base_fd: int, base: Path) -> bytes:
        """A per-directory key in <agentcap_dir>/.fingerprint-key (0600), created on first use."""
        key = Redactor.read_key(base_fd, base)
        if key:
            return key
        # Written whole under a temporary name, then linked into place: a crash never leaves an empty
        # key behind, and of two proxies starting together both end up using the one that landed.
        temporary = f"{KEY_FILE}.{secrets.token_hex(6)}.tmp"
        fd = open_nofollow(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, base_fd, base)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_hex(32).encode())
            try:
                os.link(temporary, KEY_FILE, src_dir_fd=base_fd, dst_dir_fd=base_fd, follow_symlinks=False)
            except FileExistsError:
                if Redactor.read_key(base_fd, base) is None:  # the existing file was empty or truncated
                    os.replace(temporary, KEY_FILE, src_dir_fd=base_fd, dst_dir_fd=base_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=base_fd)
        key = Redactor.read_key(base_fd, base)
        if not key:
            raise AgentCapError(f"{base / KEY_FILE}: could not create the fingerprint key")
        return key

    @staticmethod
    def read_key(base_fd: int, base: Path) -> bytes | None:
        try:
            fd = open_nofollow(KEY_FILE, os.O_RDONLY | os.O_NONBLOCK, base_fd, base)
        except FileNotFoundError:
            return None
        except AgentCapError:
            raise AgentCapError(
                f"{base / KEY_FILE} is a symbolic link; refusing to use it as the fingerprint key. "
                "Remove the link (a new key is made) or put the real key file there."
            ) from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise AgentCapError(f"{base / KEY_FILE} is not a regular file; remove it (a new key is made)")
            key = handle.read(4096).strip()
            if len(key) < 32:
                log.warning(
                    "agentcap: %s is empty or too short (interrupted creation?); making a new key",
                    base / KEY_FILE,
                )
                return None
            if info.st_mode & 0o077:
                log.warning("agentcap: %s was readable by others; setting it to 0600", base / KEY_FILE)
                os.fchmod(fd, 0o600)
        return key


@dataclass(frozen=True)
class UpstreamKey:
    """`agentcap run`'s key isolation: the agent holds a placeholder, the upstream gets the real key.

    Handed over once on an inherited pipe (agentcap_upstream_key_fd) as JSON {placeholder, key,
    upstream}: never on the command line or in the environment, both of which the agent can read.
    """

    placeholder: bytes
    key: bytes
    origin: tuple[str, str, int]  # (scheme, host, port): the only destination that may receive the key

    @classmethod
    def read(cls, fd: int) -> "UpstreamKey":
        try:
            with os.fdopen(fd, "rb") as handle:
                given = json.loads(handle.read())
            upstream = urlsplit(given["upstream"])
            scheme, host = upstream.scheme.lower(), (upstream.hostname or "").lower()
            origin = (scheme, host, upstream.port or {"http": 80, "https": 443}[scheme])
            placeholder, key = given["placeholder"].encode(), given["key"].encode()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # The type only: a message could quote what was read.
            raise AgentCapError(
                f"agentcap_upstream_key_fd: cannot read the upstream key from fd {fd} ({type(exc).__name__})"
            ) from None
        if len(placeholder) < 16 or not key or not host:
            raise AgentCapError("agentcap_upstream_key_fd: need a placeholder of 16+ characters")
        return cls(placeholder, key, origin)

    def swap(self, request: http.Request, extra_redacted: Sequence[str]) -> None:
        fields = request.headers.fields
        if not any(self.placeholder in value for _, value in fields):
            return
        if (request.scheme, request.host.lower(), request.port) != self.origin:
            log.warning("agentcap: a request to %s carried the key placeholder; not replaced", request.host)
            return
        # Only in headers the record redacts: the record keeps the real key's fingerprint, never the key.
        credential = Redactor(b"", extra_redacted).is_credential
        request.headers.fields = tuple(
            (name, value.replace(self.placeholder, self.key) if credential(name.decode("latin-1")) else value)
            for name, value in fields
        )


# ==================================================================================================
# Writer messages: what the proxy journals for the writer, typed
# Each is framed as a marshal of (kind, fields): builtins only, and both ends run the same interpreter.
# ==================================================================================================


@dataclass
class CallSnapshot(CallIdentity):
    """Plain values taken from a finished flow on the event loop; the writer builds the record.

    Credential headers and query values are already masked: this is what reaches the journal.
    """

    KIND: ClassVar[str] = "call"

    method: str
    url: str
    upstream_url: str
    http_version: str
    request_headers: Sequence[tuple[bytes, bytes]]  # raw fields: decoding is the writer's work
    request_raw: bytes | None
    response_status: int | None
    response_headers: Sequence[tuple[bytes, bytes]]
    response_raw: bytes | None
    response_streamed: bool
    response_started_at: float | None
    ended_at: float
    error: dict[str, str] | None
    websocket: dict[str, Any] | None = None


@dataclass
class RunTally:
    """A run the proxy files calls under, with what only the proxy can count (cumulative, so replay-safe)."""

    KIND: ClassVar[str] = "run"

    run_id: str
    agent: str
    opened_at: float  # when this proxy first filed a call under it (the start of a new run)
    passthrough: int = 0  # requests relayed without a record
    lost: int = 0  # calls relayed but not journaled (no space for the journal)


@dataclass
class CloseRuns:
    """The proxy stopped cleanly: finish every run with this status."""

    KIND: ClassVar[str] = "close"

    status: str


@dataclass
class NextSegment:
    """The journal continues in segment `number` (written last in a full segment)."""

    KIND: ClassVar[str] = "next"

    number: int


Message = CallSnapshot | RunTally | CloseRuns | NextSegment

MESSAGE_TYPES: dict[str, type[Message]] = {
    kind.KIND: kind for kind in (CallSnapshot, RunTally, CloseRuns, NextSegment)
}


def encode_message(message: Message) -> bytes:
    return marshal.dumps((message.KIND, vars(message)))


def decode_message(payload: bytes) -> Message:
    kind, fields = marshal.loads(payload)
    return MESSAGE_TYPES[kind](**fields)


# ==================================================================================================
# Record building: a snapshot becomes one JSON line (in the writer)
# ==================================================================================================


class RawJson:
    """A body that is already strict JSON text: written into the line as is, never re-encoded.

    Re-encoding a large prompt dominated the writer's time; splicing keeps the client's own bytes
    (CR/LF between tokens become spaces, so the record stays on one line).
    """

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any) -> None:
        self.text = text.replace("\r", " ").replace("\n", " ")
        self.value = value


# Unguessable, so no string a client or upstream sends can be mistaken for a splice point.
SPLICE_MARK = f"\x00agentcap-splice-{secrets.token_hex(16)}\x00"

ENCODED_SPLICE_MARK = json.dumps(SPLICE_MARK)


def dumps_line(record: dict[str, Any]) -> bytes:
    """One compact JSON line; falls back to \\u escapes when a string holds lone surrogates."""
    try:
        return encode_line(record, ensure_ascii=False)
    except UnicodeEncodeError:
        # Spliced bodies are strictly decoded UTF-8, so the surrogate is elsewhere: escaping fixes it.
        return encode_line(record, ensure_ascii=True)


def encode_line(record: dict[str, Any], *, ensure_ascii: bool) -> bytes:
    spliced: list[str] = []

    def splice(value: Any) -> str:
        if isinstance(value, RawJson):
            spliced.append(value.text)
            return SPLICE_MARK
        raise TypeError(f"cannot serialise {type(value).__name__}")

    text = json.dumps(record, ensure_ascii=ensure_ascii, separators=(",", ":"), default=splice)
    pieces = text.split(ENCODED_SPLICE_MARK)
    parts = [pieces[0]]
    for body, piece in zip(spliced, pieces[1:], strict=True):
        parts += [body, piece]
    return ("".join(parts) + "\n").encode("utf-8")


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


SSE_LINE_END = re.compile(r"\r\n|\r|\n")  # only these end an SSE line (not U+2028 and friends)


def iter_sse_data(text: str) -> Iterator[str]:
    """The `data:` payload of each SSE event (multi-line data joined); CRLF, LF and bare CR end lines."""
    data_lines: list[str] = []
    for line in SSE_LINE_END.split(text) if "\r" in text else text.split("\n"):
        if not line:
            if data_lines:
                yield "\n".join(data_lines)
                data_lines = []
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
    if data_lines:
        yield "\n".join(data_lines)


class ModelAndUsage:
    """What the upstream reported about itself: served_model from the first event that names one,
    usage from the last event that has one.

    Anthropic splits usage between message_start and message_delta, so later keys overlay earlier.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None

    def absorb(self, event: dict[str, Any]) -> None:
        holders = [event] + [event[k] for k in ("response", "message") if isinstance(event.get(k), dict)]
        for holder in holders:
            if self.model is None and isinstance(holder.get("model"), str) and holder["model"]:
                self.model = holder["model"]
            if isinstance(holder.get("usage"), dict):
                overlay = event.get("type") == "message_delta" and self.usage
                self.usage = {**self.usage, **holder["usage"]} if overlay else holder["usage"]

    def absorb_payloads(self, payloads: Iterable[str]) -> "ModelAndUsage":
        for payload in payloads:
            # Once the model is known only usage can change: most deltas need no parsing at all.
            if not payload.startswith("{") or (self.model is not None and '"usage"' not in payload):
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.absorb(event)
        return self


def header_pairs(fields: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Raw header fields (as the event loop hands them over, undecoded) → lowercased text pairs."""
    return [
        (name.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape")) for name, value in fields
    ]


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value or None
    return None


def body_fields(raw: bytes | None, encoding: str | None) -> dict[str, Any]:
    """Decoded body as `body` (JSON), `body_text` or `body_base64`, with sizes."""
    fields: dict[str, Any] = {"content_encoding": encoding, "wire_size": len(raw or b"")}
    data = raw or b""
    if encoding and data:
        try:
            data = content_encoding.decode(data, encoding)
        except (ValueError, binascii.Error, OSError) as exc:
            fields["decode_error"] = f"cannot decode {encoding}: {exc}"
    fields["size"] = len(data)
    if not data:
        return fields
    if "decode_error" not in fields:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            try:
                fields["body"] = RawJson(text, json.loads(text, parse_constant=reject_constant))
            except ValueError:
                fields["body_text"] = text
            return fields
    fields["body_base64"] = base64.b64encode(data).decode("ascii")
    return fields


def stream_fields(raw: bytes, encoding: str | None) -> tuple[dict[str, Any], str | None]:
    """Streamed body as `raw` text exactly as received (after content decoding); returns the text too."""
    fields: dict[str, Any] = {"content_encoding": encoding, "wire_size": len(raw), "stream": True}
    data = raw
    if encoding and data:
        try:
            data = content_encoding.decode(data, encoding)
        except (ValueError, binascii.Error, OSError) as exc:
            # A cut compressed stream cannot be fully decoded: keep the bytes that arrived.
            fields["decode_error"] = f"cannot decode {encoding}: {exc}"
    fields["size"] = len(data)
    try:
        text = data.decode("utf-8")
        fields["raw"] = text
        return fields, text
    except UnicodeDecodeError:
        fields["raw_base64"] = base64.b64encode(data).decode("ascii")
        return fields, data.decode("utf-8", "replace")


def build_record(snapshot: CallSnapshot, agent: str) -> dict[str, Any]:
    request_headers = header_pairs(snapshot.request_headers)
    response_headers = header_pairs(snapshot.response_headers)
    request: dict[str, Any] = {"headers": request_headers}
    request_encoding = header_value(request_headers, "content-encoding")
    request.update(body_fields(snapshot.request_raw, request_encoding))
    reported = ModelAndUsage()
    response: dict[str, Any] | None = None
    if snapshot.response_status is not None:
        response = {"status_code": snapshot.response_status, "headers": response_headers}
        response_encoding = header_value(response_headers, "content-encoding")
        if snapshot.response_streamed:
            fields, text = stream_fields(snapshot.response_raw or b"", response_encoding)
            response.update(fields)
            reported.absorb_payloads(iter_sse_data(text or ""))
        else:
            response.update(body_fields(snapshot.response_raw, response_encoding))
            response["stream"] = False
            body = response.get("body")
            if isinstance(body, RawJson) and isinstance(body.value, dict):
                reported.absorb(body.value)
    if snapshot.websocket is not None:
        messages = snapshot.websocket["messages"]
        reported.absorb_payloads(m["text"] for m in messages if m["from"] == "server" and "text" in m)
    record: dict[str, Any] = {
        "schema": CAPTURE_SCHEMA,
        "request_id": snapshot.request_id,
        "seq": snapshot.seq,
        "run_id": snapshot.run_id,
        "agent": agent,
        "task_id": snapshot.task_id,
        "turn": snapshot.turn,
        "api": snapshot.api,
        "transport": "http" if snapshot.websocket is None else "websocket",
        "method": snapshot.method,
        "url": snapshot.url,
        "upstream_url": snapshot.upstream_url,
        "http_version": snapshot.http_version,
        "captured_at": round(snapshot.started_at, 6),
        "ttfb_ms": None
        if snapshot.response_started_at is None
        else round((snapshot.response_started_at - snapshot.started_at) * 1000, 3),
        "duration_ms": round((snapshot.ended_at - snapshot.started_at) * 1000, 3),
        "request": request,
        "response": response,
        "served_by": header_value(response_headers, "x-served-by"),
        "served_build_info": header_value(response_headers, "x-build-info"),
        "served_model": reported.model,
        "usage": reported.usage,
        "error": snapshot.error,
    }
    if snapshot.websocket is not None:
        record["websocket"] = snapshot.websocket
    return record


# ==================================================================================================
# Run files: captures.jsonl and run.json, never through a symbolic link
# Anyone who can write into agentcap_dir (a co-tenant, the recorded agent) could plant a symbolic
# link where the addon writes. Every file and run directory is therefore opened relative to a
# directory descriptor with O_NOFOLLOW, and a link is refused with a message instead of followed.
# ==================================================================================================


def open_base(directory: Path) -> int:
    """agentcap_dir itself (created if missing): the user's choice, so a link to it is fine."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise AgentCapError(
            f"agentcap_dir={directory}: cannot use it ({exc.strerror}); pick a writable directory "
            "with --set agentcap_dir=PATH"
        ) from None


def open_nofollow(name: str, flags: int, dir_fd: int, where: Path, mode: int = 0o600) -> int:
    """`name` inside `dir_fd`; a symbolic link there is refused, never followed."""
    try:
        return os.open(name, flags | NOFOLLOW, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and flags & os.O_DIRECTORY):
            raise AgentCapError(
                f"{where / name} is a symbolic link (or not what it should be); refusing to follow it. "
                "Remove it if you did not put it there."
            ) from None
        raise


def open_run_dir(base_fd: int, base: Path, run_id: str) -> int:
    return open_nofollow(run_id, os.O_RDONLY | os.O_DIRECTORY, base_fd, base)


def read_small_file(name: str, dir_fd: int, where: Path, limit: int = 1 << 20) -> bytes | None:
    """A small regular file, or None when it does not exist."""
    try:
        fd = open_nofollow(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd, where)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AgentCapError(f"{where / name} is not a regular file; remove it")
        return handle.read(limit)


def write_replacing(name: str, data: bytes, dir_fd: int, where: Path, mode: int = 0o644) -> None:
    """Write `name` whole under a temporary name, then rename it into place (readers never see half)."""
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = open_nofollow(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd, where, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        if exc.errno not in DISK_FULL:
            raise
        # No room for a second copy: overwrite the existing file's blocks instead (shrinking is free).
        fd = open_nofollow(name, os.O_WRONLY, dir_fd, where)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Every record starts {"schema":...,"request_id":...,"seq":...: read at the start of a line only.
RECORD_HEAD = re.compile(rb'\{"schema":"[^"]*","request_id":"([0-9a-f]{32})","seq":(\d+)')


def existing_max_seq(run_fd: int, run_dir: Path) -> int:
    """Continue numbering when a run directory is reused, so seq stays unique within the run."""
    try:
        fd = open_nofollow(CAPTURES_FILE, os.O_RDONLY | os.O_NONBLOCK, run_fd, run_dir)
    except FileNotFoundError:
        return 0
    highest = 0
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AgentCapError(f"{run_dir / CAPTURES_FILE} is not a regular file; refusing to use the run")
        for line in handle:
            if match := RECORD_HEAD.match(line):
                highest = max(highest, int(match.group(2)))
    return highest


class RunLog:
    """One run directory as the writer sees it: captures.jsonl (append-only) and run.json."""

    COUNTS: ClassVar[tuple[str, ...]] = ("recorded", "failed", "errors", "http_errors", "passthrough", "lost")

    def __init__(self, run_id: str, agent: str, base: Path) -> None:
        self.run_id = run_id
        self.agent = agent
        self.directory = base / run_id
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.upstreams: set[str] = set()
        # Counts carried over from run.json when the run is reused, plus what this writer added;
        # passthrough and lost also have a part only the proxy knows (its cumulative tallies).
        self.counts = dict.fromkeys(self.COUNTS, 0)
        self.proxy_passthrough = 0
        self.proxy_lost = 0
        self.size = 0  # captures.jsonl size after this writer's last append
        self.fd: int | None = None
        self.dirty = True
        self.replayed: set[str] = set()  # request ids already on disk past the checkpoint (takeover)

    @classmethod
    def resume(cls, base_fd: int, base: Path, tally: "RunTally") -> "RunLog":
        """A reused run directory keeps its start time, upstreams and counts."""
        run_id = tally.run_id
        run = cls(run_id, tally.agent, base)
        run.started_at = tally.opened_at
        run_fd = open_run_dir(base_fd, base, run_id)
        try:
            text = read_small_file(RUN_FILE, run_fd, run.directory)
            with contextlib.suppress(FileNotFoundError):
                run.size = os.stat(CAPTURES_FILE, dir_fd=run_fd, follow_symlinks=False).st_size
        finally:
            os.close(run_fd)
        try:
            info = json.loads(text or b"")
            run.started_at = datetime.fromisoformat(info["started_at"]).timestamp()
            run.upstreams.update(info.get("upstreams") or [])
            for key in cls.COUNTS:
                run.counts[key] = int((info.get("counts") or {}).get(key, 0))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        return run

    def state(self) -> dict[str, Any]:
        """What a writer taking over needs to go on exactly where this one stood (the checkpoint)."""
        return {
            "agent": self.agent,
            "started_at": self.started_at,
            "upstreams": sorted(self.upstreams),
            "counts": self.counts,
            "proxy": [self.proxy_passthrough, self.proxy_lost],
            "size": self.size,
        }

    @classmethod
    def from_state(cls, run_id: str, state: dict[str, Any], base: Path) -> "RunLog":
        run = cls(run_id, state["agent"], base)
        run.started_at = state["started_at"]
        run.upstreams = set(state["upstreams"])
        run.counts = dict(state["counts"])
        run.proxy_passthrough, run.proxy_lost = state["proxy"]
        run.size = state["size"]
        return run

    def totals(self) -> dict[str, int]:
        counts = dict(self.counts)
        counts["passthrough"] += self.proxy_passthrough
        counts["lost"] += self.proxy_lost
        return counts

    def open_captures(self, base_fd: int) -> None:
        run_fd = open_run_dir(base_fd, self.directory.parent, self.run_id)
        try:
            # Read access too: the last byte is checked for a cut line before each append.
            fd = open_nofollow(CAPTURES_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT, run_fd, self.directory)
        finally:
            os.close(run_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise AgentCapError(f"{self.directory / CAPTURES_FILE} is not a regular file")
        self.fd = fd

    def close_captures(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def append(self, data: bytes) -> None:
        """All of `data` or nothing: a failed write (disk full) is cut back off before the error rises."""
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            size = self.ends_with_whole_line()
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:
                os.ftruncate(self.fd, size)
                raise
            self.size = size + len(data)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def ends_with_whole_line(self) -> int:
        """The file's size, after removing a cut last line (a writer killed mid-write) if there is one."""
        assert self.fd is not None
        size = os.fstat(self.fd).st_size
        if not size or os.pread(self.fd, 1, size - 1) == b"\n":
            return size
        keep = 0
        position = size
        while position > 0:
            chunk = min(1 << 16, position)
            position -= chunk
            newline = os.pread(self.fd, chunk, position).rfind(b"\n")
            if newline >= 0:
                keep = position + newline + 1
                break
        os.ftruncate(self.fd, keep)
        log.warning(
            "agentcap: %s ended in a cut last line (%d bytes, left by a writer that was stopped mid-line); "
            "removed it before appending",
            self.directory / CAPTURES_FILE,
            size - keep,
        )
        return keep

    def request_ids_from(self, offset: int) -> set[str]:
        """Request ids of the lines from `offset` on: what a dead writer wrote after its checkpoint."""
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            end = self.ends_with_whole_line()
            found: set[str] = set()
            position = min(offset, end)
            carry = b""
            while position < end:
                block = carry + os.pread(self.fd, min(1 << 20, end - position), position)
                position += len(block) - len(carry)
                lines = block.split(b"\n")
                carry = lines.pop()
                for line in lines:
                    if match := RECORD_HEAD.match(line):
                        found.add(match.group(1).decode())
            self.size = end
            return found
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def write_run_json(self, base_fd: int, status: str) -> None:
        info = {
            "schema": RUN_SCHEMA,
            "run_id": self.run_id,
            "agent": self.agent,
            "status": status,
            "started_at": utc_iso(self.started_at),
            "ended_at": utc_iso(self.ended_at) if self.ended_at else None,
            "upstreams": sorted(self.upstreams),
            "counts": self.totals(),
            "addon_version": ADDON_VERSION,
            "mitmproxy_version": MITMPROXY_VERSION,
        }
        run_fd = open_run_dir(base_fd, self.directory.parent, self.run_id)
        try:
            write_replacing(RUN_FILE, (json.dumps(info, indent=2) + "\n").encode(), run_fd, self.directory)
        finally:
            os.close(run_fd)
        self.dirty = False


# ==================================================================================================
# The journal: finished calls on their way to the writer
# <agentcap_dir>/.spool/<name>/: `lock` (held shared by the proxy and its writer while they live),
# `checkpoint.json` (where the writer stands, and each run's counts there) and numbered segments.
# A segment is allocated whole up front, so a frame that fits never meets a full disk halfway; a
# frame is its payload followed by its header written last, so a reader (or a crash) sees either the
# whole frame or none of it.
# ==================================================================================================


def segment_name(number: int) -> str:
    return f"{number:06d}.seg"


def reserve(fd: int, size: int) -> None:
    """Allocate a segment's blocks now, so the final tallies and the close message always fit."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
    else:  # macOS has none: a sparse segment still works, frames stay all-or-nothing (header last)
        os.ftruncate(fd, size)


class Journal:
    """The proxy's side of the journal: every message becomes a committed frame before the hook returns."""

    def __init__(self, base_fd: int, base: Path) -> None:
        spool = base / SPOOL_DIR
        with contextlib.suppress(FileExistsError):
            os.mkdir(SPOOL_DIR, 0o700, dir_fd=base_fd)
        spool_fd = open_nofollow(SPOOL_DIR, os.O_RDONLY | os.O_DIRECTORY, base_fd, base)
        try:
            self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
            os.mkdir(self.name, 0o700, dir_fd=spool_fd)
            self.fd = open_nofollow(self.name, os.O_RDONLY | os.O_DIRECTORY, spool_fd, spool)
        finally:
            os.close(spool_fd)
        self.directory = spool / self.name
        self.lock_fd = open_nofollow("lock", os.O_RDWR | os.O_CREAT | os.O_EXCL, self.fd, self.directory)
        fcntl.flock(self.lock_fd, fcntl.LOCK_SH)  # while held, no other proxy takes this journal for orphaned
        self.number = 0
        self.last_error = ""  # why the last message could not be journaled
        self.segment_fd: int | None = None
        self.size = 0
        self.offset = 0
        if not self.open_segment(1, 2 * CONTROL_RESERVE):
            raise AgentCapError(f"{self.directory}: cannot create the journal ({self.last_error})")

    def open_segment(self, number: int, needed: int) -> bool:
        """Allocate segment `number` in full (a smaller one when space is short); False if impossible."""
        fd = None
        try:
            fd = open_nofollow(
                segment_name(number), os.O_RDWR | os.O_CREAT | os.O_EXCL, self.fd, self.directory
            )
            for size in dict.fromkeys((max(SEGMENT_BYTES, needed), needed)):
                try:
                    reserve(fd, size)
                    break
                except OSError as exc:
                    if exc.errno not in DISK_FULL:
                        raise
            else:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            if fd is not None:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(segment_name(number), dir_fd=self.fd)
            self.last_error = exc.strerror or str(exc)
            return False
        if self.segment_fd is not None:
            if not self.write(encode_message(NextSegment(number))):  # the reader would never find it
                os.close(fd)
                os.unlink(segment_name(number), dir_fd=self.fd)
                return False
            os.close(self.segment_fd)
        self.segment_fd, self.number, self.size, self.offset = fd, number, size, 0
        return True

    def append(self, message: Message, *, control: bool = False) -> bool:
        """True once the message is committed; False when there is no space for it (nothing written)."""
        try:
            payload = encode_message(message)
        except ValueError:
            log.exception("agentcap: cannot encode a journal message")
            return False
        needed = FRAME.size + len(payload)
        room = self.size - self.offset - (0 if control else CONTROL_RESERVE)
        if needed > room and not self.open_segment(self.number + 1, needed + CONTROL_RESERVE):
            return False
        return self.write(payload)

    def write(self, payload: bytes) -> bool:
        assert self.segment_fd is not None
        try:
            position = self.offset + FRAME.size
            view = memoryview(payload)
            while view:
                written = os.pwrite(self.segment_fd, view, position)
                view, position = view[written:], position + written
            os.pwrite(self.segment_fd, FRAME.pack(len(payload), len(payload) ^ FRAME_CHECK), self.offset)
        except OSError as exc:
            self.last_error = exc.strerror or str(exc)
            return False
        self.offset += FRAME.size + len(payload)
        return True

    def close(self) -> None:
        """Release this proxy's hold; the files stay for the writer (which removes them when done)."""
        for fd in (self.segment_fd, self.fd, self.lock_fd):
            if fd is not None:
                os.close(fd)
        self.segment_fd = None


class JournalReader:
    """The writer's side of the journal: committed frames in order, from the checkpoint on."""

    def __init__(self, base_fd: int, base: Path, name: str) -> None:
        spool_fd = open_nofollow(SPOOL_DIR, os.O_RDONLY | os.O_DIRECTORY, base_fd, base)
        try:
            self.fd = open_nofollow(name, os.O_RDONLY | os.O_DIRECTORY, spool_fd, base / SPOOL_DIR)
        finally:
            os.close(spool_fd)
        self.directory = base / SPOOL_DIR / name
        checkpoint = json.loads(
            read_small_file("checkpoint.json", self.fd, self.directory, 64 << 20) or b"{}"
        )
        self.number: int = checkpoint.get("segment", 1)
        self.offset: int = checkpoint.get("offset", 0)
        self.runs: dict[str, dict[str, Any]] = checkpoint.get("runs", {})
        self.saved_at = (self.number, self.offset)
        self.segment_fd: int | None = None
        self.open_segment()
        self.remove_segments_before(self.number)

    def open_segment(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.segment_fd = open_nofollow(segment_name(self.number), os.O_RDONLY, self.fd, self.directory)

    def read(self, budget: int = 8 << 20) -> list[tuple[Message, tuple[int, int]]]:
        """Committed messages from where the reader stands (each with the position after it), up to
        about `budget` bytes of payload."""
        messages: list[tuple[Message, tuple[int, int]]] = []
        while budget > 0 and self.segment_fd is not None:
            header = os.pread(self.segment_fd, FRAME.size, self.offset)
            if len(header) < FRAME.size:
                break
            length, check = FRAME.unpack(header)
            if not length or check != length ^ FRAME_CHECK:
                break  # not committed (yet, or ever: a proxy killed before writing the header)
            payload = os.pread(self.segment_fd, length, self.offset + FRAME.size)
            self.offset += FRAME.size + length
            budget -= length
            try:
                message = decode_message(payload)
            except (ValueError, EOFError, KeyError, TypeError):
                log.error("agentcap: skipping an unreadable journal frame in %s", self.directory)
                continue
            if isinstance(message, NextSegment):
                os.close(self.segment_fd)
                self.segment_fd, self.number, self.offset = None, message.number, 0
                self.open_segment()
                continue
            messages.append((message, (self.number, self.offset)))
        return messages

    def save(self, position: tuple[int, int], runs: dict[str, dict[str, Any]]) -> None:
        """Every message before `position` is in the run files, and `runs` is their state there."""
        checkpoint = {"segment": position[0], "offset": position[1], "runs": runs}
        write_replacing("checkpoint.json", json.dumps(checkpoint).encode(), self.fd, self.directory, 0o600)
        self.saved_at = position
        self.remove_segments_before(position[0])

    def remove_segments_before(self, number: int) -> None:
        for name in os.listdir(self.fd):
            if name.endswith(".seg") and name[:-4].isdigit() and int(name[:-4]) < number:
                os.unlink(name, dir_fd=self.fd)

    def remove(self) -> None:
        """Every message is in the run files: the journal goes."""
        if self.segment_fd is not None:
            os.close(self.segment_fd)
            self.segment_fd = None
        for name in os.listdir(self.fd):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)
        os.close(self.fd)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)


def orphaned_journals(base_fd: int, base: Path) -> Iterator[str]:
    """Journals of proxies that died with their writer: nobody holds their lock any more."""
    try:
        spool_fd = open_nofollow(SPOOL_DIR, os.O_RDONLY | os.O_DIRECTORY, base_fd, base)
    except FileNotFoundError:
        return
    try:
        for name in sorted(os.listdir(spool_fd)):
            try:
                journal_fd = open_nofollow(name, os.O_RDONLY | os.O_DIRECTORY, spool_fd, base / SPOOL_DIR)
            except (AgentCapError, OSError) as exc:
                log.warning("agentcap: ignoring %s in the journal directory: %s", name, exc)
                continue
            try:
                lock_fd = open_nofollow("lock", os.O_RDWR, journal_fd, base / SPOOL_DIR / name)
            except FileNotFoundError:
                os.close(journal_fd)
                continue  # still being created
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            else:
                yield name
            finally:
                os.close(lock_fd)
                os.close(journal_fd)
    finally:
        os.close(spool_fd)


# ==================================================================================================
# Writers: the journal becomes run files, in a process (or thread) the proxy keeps alive
# ==================================================================================================


class RecordWriter:
    """Turns journaled calls into JSON lines: captures.jsonl per run, run.json, the checkpoint.

    Runs in the writer process, or in the proxy (a thread; or at start-up, replaying a journal a
    killed proxy left behind). Starting from the journal's checkpoint, it skips calls a previous
    writer already wrote after that checkpoint, so a takeover neither loses nor repeats a record.
    """

    def __init__(self, base: Path, journal_name: str, *, lock: bool = False) -> None:
        self.base = base
        self.base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.journal = JournalReader(self.base_fd, base, journal_name)
        self.lock_fd: int | None = None
        if lock:  # a writer process: the journal is not orphaned while it lives
            self.lock_fd = open_nofollow("lock", os.O_RDWR, self.journal.fd, self.journal.directory)
            fcntl.flock(self.lock_fd, fcntl.LOCK_SH)
        self.applied = self.journal.saved_at  # every message before this position is in the run files
        self.runs: dict[str, RunLog] = {}
        self.open_files: OrderedDict[str, RunLog] = OrderedDict()  # least recently used first
        self.persisted_at = time.monotonic()
        self.lost_logged_at = 0.0
        self.last_error = ""
        for run_id, state in self.journal.runs.items():
            run = RunLog.from_state(run_id, state, base)
            self.runs[run_id] = run
            with self.logged(run):
                self.use(run)
                run.replayed = run.request_ids_from(run.size)

    def serve(self, bell_fd: int) -> None:
        """Until the proxy closes the journal (or dies: then the runs end `interrupted`)."""
        while True:
            dirty = self.applied != self.journal.saved_at or any(run.dirty for run in self.runs.values())
            ready, _, _ = select.select([bell_fd], [], [], IDLE_PERSIST_S if dirty else None)
            if not ready:
                self.persist()
                continue
            rung = os.read(bell_fd, 1 << 16)
            status = self.catch_up()
            if status is None and not rung:
                status = self.catch_up() or "interrupted"  # the proxy is gone: nothing more will come
            if status is not None:
                self.finish(status)
                return

    def drain(self, default_status: str) -> None:
        """Everything journaled, then finish (replaying an orphaned journal, or a dead writer's)."""
        self.finish(self.catch_up() or default_status)

    def catch_up(self) -> str | None:
        """Write every committed message; the status if the proxy closed the runs."""
        while messages := self.journal.read():
            status = self.apply(messages)
            if status is not None:
                return status
            if time.monotonic() - self.persisted_at >= RUN_JSON_INTERVAL_S:
                self.persist()
        return None

    def apply(self, messages: list[tuple[Message, tuple[int, int]]]) -> str | None:
        pending: dict[str, list[tuple[bytes, CallSnapshot]]] = {}
        for message, position in messages:
            if isinstance(message, RunTally):
                new = message.run_id not in self.runs
                if new:
                    self.flush(pending)
                    self.register(message)
                self.tally(message)
                if new:  # the checkpoint holds the counts a run started from, before any of its lines
                    self.applied = position
                    self.persist()
            elif isinstance(message, CallSnapshot):
                self.encode(message, pending)
            elif isinstance(message, CloseRuns):
                self.flush(pending)
                return message.status
        self.flush(pending)
        self.applied = messages[-1][1]
        return None

    def register(self, tally: RunTally) -> None:
        try:
            run = RunLog.resume(self.base_fd, self.base, tally)
        except (AgentCapError, OSError) as exc:
            log.error("agentcap: cannot open run %s: %s", tally.run_id, exc)
            run = RunLog(tally.run_id, tally.agent, self.base)
            run.started_at = tally.opened_at
        self.runs[tally.run_id] = run

    def tally(self, tally: RunTally) -> None:
        run = self.runs[tally.run_id]
        run.proxy_passthrough = max(run.proxy_passthrough, tally.passthrough)
        run.proxy_lost = max(run.proxy_lost, tally.lost)
        run.dirty = True

    def encode(self, snapshot: CallSnapshot, pending: dict[str, list[tuple[bytes, CallSnapshot]]]) -> None:
        run = self.runs.get(snapshot.run_id)
        if run is None:  # its RunTally could not be journaled (no space): the run is still known by name
            self.register(RunTally(snapshot.run_id, "unknown", snapshot.started_at))
            run = self.runs[snapshot.run_id]
        run.upstreams.add(snapshot.upstream_url)
        run.dirty = True
        if snapshot.request_id in run.replayed:  # written by a writer that died before its checkpoint
            run.replayed.discard(snapshot.request_id)
            self.count(run, snapshot)
            return
        try:
            line = dumps_line(build_record(snapshot, run.agent))
        except Exception:
            log.exception("agentcap: FAILED TO ENCODE a capture record; call relayed, not recorded")
            run.counts["lost"] += 1
            return
        pending.setdefault(run.run_id, []).append((line, snapshot))

    def flush(self, pending: dict[str, list[tuple[bytes, CallSnapshot]]]) -> None:
        """One write per run and batch; if it fails (disk full), each line alone, whole or not at all."""
        for run_id, entries in pending.items():
            run = self.runs[run_id]
            if self.append(run, b"".join(line for line, _ in entries)):
                written = entries
            else:
                written = [entry for entry in entries if len(entries) > 1 and self.append(run, entry[0])]
            for _, snapshot in written:  # counted only once on disk: run.json never claims a missing line
                self.count(run, snapshot)
            if len(written) < len(entries):
                run.counts["lost"] += len(entries) - len(written)
                self.report_lost(run)
        pending.clear()

    def append(self, run: RunLog, data: bytes) -> bool:
        with self.logged(run):
            self.use(run)
            run.append(data)
            return True
        return False

    def report_lost(self, run: RunLog) -> None:
        # A full disk fails every call: one line per second is loud enough and keeps the log readable.
        if time.monotonic() - self.lost_logged_at >= 1.0:
            self.lost_logged_at = time.monotonic()
            log.error(
                "agentcap: FAILED TO WRITE to %s (%s): %d record(s) of this run so far were relayed but "
                "not recorded",
                run.directory,
                self.last_error,
                run.totals()["lost"],
            )

    @staticmethod
    def count(run: RunLog, snapshot: CallSnapshot) -> None:
        status = snapshot.response_status
        run.counts["recorded"] += 1
        # The one failed-call rule of every agentcap reader (docs/capture-format.md): an error, no
        # response, or an error status.
        run.counts["failed"] += snapshot.error is not None or status is None or status >= 400
        run.counts["errors"] += snapshot.error is not None
        run.counts["http_errors"] += (status or 0) >= 400

    def use(self, run: RunLog) -> None:
        """Open the run's captures.jsonl, keeping at most MAX_OPEN_CAPTURES open (a run per header value)."""
        if run.fd is not None:
            self.open_files.move_to_end(run.run_id)
            return
        try:
            run.open_captures(self.base_fd)
        except OSError as exc:
            if exc.errno not in OUT_OF_FILES:
                raise
            self.close_files()  # the proxy's connections may hold the rest: give back ours and retry
            run.open_captures(self.base_fd)
        self.open_files[run.run_id] = run
        while len(self.open_files) > MAX_OPEN_CAPTURES:
            self.open_files.popitem(last=False)[1].close_captures()

    def close_files(self) -> None:
        while self.open_files:
            self.open_files.popitem()[1].close_captures()

    @contextlib.contextmanager
    def logged(self, run: RunLog) -> Iterator[None]:
        """Disk full, permissions, a planted link: remembered for the report, and traffic goes on."""
        try:
            yield
        except AgentCapError as exc:
            self.last_error = str(exc)
            log.error("agentcap: %s", exc)
            run.close_captures()
            self.open_files.pop(run.run_id, None)
        except OSError as exc:
            self.last_error = exc.strerror or str(exc)
            if exc.errno in OUT_OF_FILES:
                self.close_files()

    def persist(self) -> None:
        """Checkpoint first, then run.json: run.json never says more than a takeover would start from."""
        try:
            self.journal.save(self.applied, {run_id: run.state() for run_id, run in self.runs.items()})
        except OSError as exc:
            log.error(
                "agentcap: cannot save the journal checkpoint in %s: %s", self.journal.directory, exc.strerror
            )
            return
        for run in self.runs.values():
            if run.dirty:
                try:
                    run.write_run_json(self.base_fd, "running")
                except (OSError, AgentCapError) as exc:
                    log.error("agentcap: cannot write %s: %s", run.directory / RUN_FILE, exc)
        self.persisted_at = time.monotonic()

    def finish(self, status: str) -> None:
        now = time.time()
        for run in self.runs.values():
            run.ended_at = now
        unwritten = self.write_final(status)
        self.close_files()
        self.journal.remove()
        if unwritten:  # a full disk: the journal's space is free now
            self.write_final(status, unwritten)
        for fd in (self.base_fd, self.lock_fd):
            if fd is not None:
                os.close(fd)

    def write_final(self, status: str, runs: Iterable[RunLog] | None = None) -> list[RunLog]:
        unwritten = []
        for run in self.runs.values() if runs is None else runs:
            try:
                run.write_run_json(self.base_fd, status)
            except (OSError, AgentCapError) as exc:
                log.error("agentcap: cannot finish %s: %s", run.directory / RUN_FILE, exc)
                unwritten.append(run)
        return unwritten


def replay_orphans(base_fd: int, base: Path) -> None:
    for name in orphaned_journals(base_fd, base):
        log.warning(
            "agentcap: replaying the journal %s left by a proxy that was killed with its writer", name
        )
        RecordWriter(base, name).drain("interrupted")


class WriterProcess:
    """The writer in a process of its own: encoding JSON there keeps it off the proxy's GIL.

    Its stdin is the doorbell: a byte per journaled message wakes it, EOF means the proxy is gone.
    """

    def __init__(self, base: Path, journal_name: str) -> None:
        config = json.dumps({"dir": os.path.abspath(base), "journal": journal_name})
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), WRITER_FLAG, config],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C meant for mitmdump must not kill it before it finishes
        )
        assert self.process.stdin is not None
        self.bell_fd = self.process.stdin.fileno()
        os.set_blocking(self.bell_fd, False)

    def ring(self) -> bool:
        """False when the writer is gone."""
        try:
            os.write(self.bell_fd, b"\0")
        except BlockingIOError:
            pass  # it has unread rings: it will look at the journal anyway
        except OSError:
            return False
        return True

    def finish(self, timeout: float) -> bool:
        """Close the doorbell and wait; True if the writer finished the journal."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            return self.process.wait(timeout) == 0
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return False

    def describe(self) -> str:
        code = self.process.poll()
        return f"exit status {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"


class WriterThread:
    """The writer on a thread of the proxy: for a frozen mitmdump, or a writer process that keeps dying."""

    def __init__(self, base: Path, journal_name: str) -> None:
        read_fd, self.bell_fd = os.pipe()
        os.set_blocking(self.bell_fd, False)
        self.failed = False
        self.thread = threading.Thread(target=self.work, args=(base, journal_name, read_fd), daemon=True)
        self.thread.start()

    def work(self, base: Path, journal_name: str, read_fd: int) -> None:
        try:
            RecordWriter(base, journal_name, lock=True).serve(read_fd)
        except Exception:
            self.failed = True
            log.exception("agentcap: the writer thread failed")
        finally:
            os.close(read_fd)

    def ring(self) -> bool:
        try:
            os.write(self.bell_fd, b"\0")
        except BlockingIOError:
            pass
        except OSError:
            return False
        return self.thread.is_alive()

    def finish(self, timeout: float) -> bool:
        os.close(self.bell_fd)
        self.thread.join(timeout)
        return not self.thread.is_alive() and not self.failed

    def describe(self) -> str:
        return "thread failed"


class Recorder:
    """What the hooks talk to: journals calls and tallies, and keeps a writer consuming the journal."""

    def __init__(self, base: Path, base_fd: int) -> None:
        self.base = base
        self.journal = Journal(base_fd, base)
        self.tallies: dict[str, RunTally] = {}
        self.unsent: set[str] = set()  # runs whose latest tally is not in the journal yet
        self.restarts: list[float] = []
        self.lost_logged_at = 0.0
        self.writer = self.start_writer(in_process=bool(getattr(sys, "frozen", False)))

    def start_writer(self, *, in_process: bool) -> WriterProcess | WriterThread:
        # A frozen mitmdump (the standalone binaries) cannot run this file with its interpreter.
        if not in_process:
            try:
                return WriterProcess(self.base, self.journal.name)
            except OSError as exc:
                log.warning("agentcap: cannot start the writer process (%s); writing in-process", exc)
        return WriterThread(self.base, self.journal.name)

    def open_run(self, run_id: str, agent: str) -> None:
        self.tallies[run_id] = RunTally(run_id, agent, time.time())
        self.send_tally(run_id)
        self.ring()

    def passthrough(self, run_id: str) -> None:
        self.tallies[run_id].passthrough += 1
        self.send_tally(run_id)
        self.ring()

    def record(self, snapshot: CallSnapshot) -> None:
        if self.unsent:  # a tally that found no space earlier goes first
            for run_id in list(self.unsent):
                self.send_tally(run_id)
        if not self.journal.append(snapshot):
            tally = self.tallies[snapshot.run_id]
            tally.lost += 1
            if time.monotonic() - self.lost_logged_at >= 1.0:
                self.lost_logged_at = time.monotonic()
                log.error(
                    "agentcap: FAILED TO WRITE to the journal in %s (%s): %d call(s) of run %s so far were "
                    "relayed but not recorded",
                    self.journal.directory,
                    self.journal.last_error,
                    tally.lost,
                    tally.run_id,
                )
            self.send_tally(snapshot.run_id)
        self.ring()

    def send_tally(self, run_id: str, *, control: bool = False) -> None:
        if self.journal.append(self.tallies[run_id], control=control):
            self.unsent.discard(run_id)
        else:
            self.unsent.add(run_id)

    def ring(self) -> None:
        if not self.writer.ring():
            self.replace_writer()

    def replace_writer(self) -> None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < WRITER_RESTART_WINDOW_S] + [now]
        in_process = len(self.restarts) > WRITER_RESTARTS
        log.error(
            "agentcap: THE WRITER PROCESS DIED (%s); %s continues from the journal, no call is lost",
            self.writer.describe(),
            "a writer thread in the proxy" if in_process else "a new writer process",
        )
        self.writer.finish(0)
        self.writer = self.start_writer(in_process=in_process)
        self.writer.ring()

    def close(self, status: str) -> None:
        """Final tallies and the close message, then wait until the writer has finished every run."""
        for run_id in self.tallies:
            self.send_tally(run_id, control=True)
        if not self.journal.append(CloseRuns(status), control=True):
            log.error("agentcap: cannot journal the end of the run; runs end as interrupted")
        rang = self.writer.ring()
        if not (rang and self.writer.finish(120)):
            if rang:
                log.error(
                    "agentcap: the writer did not finish (%s); finishing in the proxy", self.writer.describe()
                )
            else:
                self.writer.finish(0)
            try:  # still holding the journal's lock: no other proxy takes it for orphaned meanwhile
                RecordWriter(self.base, self.journal.name).drain("interrupted")
            except (OSError, AgentCapError) as exc:
                log.error("agentcap: cannot finish the journal %s: %s", self.journal.directory, exc)
        self.journal.close()


def writer_main(config_json: str) -> None:
    """The writer process: consume the journal until the proxy closes it or dies."""
    config = json.loads(config_json)
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    RecordWriter(Path(config["dir"]), config["journal"], lock=True).serve(sys.stdin.fileno())


addons = [AgentCap()]


if __name__ == "__main__" and sys.argv[1:2] == [WRITER_FLAG]:
    writer_main(sys.argv[2])
