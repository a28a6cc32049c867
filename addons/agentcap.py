"""agentcap: record every LLM call an agent makes, one JSON line per call.

Put mitmproxy in front of the agent's model endpoint and load this script:

    mitmdump -s addons/agentcap.py --mode reverse:https://api.openai.com \
        --listen-host 127.0.0.1 -p 8080 --set agentcap_agent=opencode

Each POST to an LLM API path (OpenAI chat completions / Responses / legacy completions,
Anthropic Messages) is relayed unchanged - streams pass through unbuffered - and written to
`<agentcap_dir>/<run-id>/captures.jsonl` when it ends. Credentials never reach the disk.
The record format is documented in docs/capture-format.md.

Self-contained on purpose: mitmproxy and the standard library only, so it runs under
whatever mitmdump the user has.
"""

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import marshal
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mitmproxy import ctx, exceptions, http
from mitmproxy.net import encoding as content_encoding
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
)
API_BY_SUFFIX = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/messages", "messages"),
    ("/completions", "completions"),
)
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "cookie", "set-cookie", "proxy-authorization"}
)
CREDENTIAL_QUERY_PARAMS = frozenset({"key", "api_key", "api-key", "access_token", "token", "sig"})
TAG_HEADER_PREFIX = b"x-agentcap-"
CONTROL_PREFIX = "/_agentcap/"
MAX_TAG_LENGTH = 128
RUN_JSON_INTERVAL_S = 1.0
WRITER_FLAG = "--agentcap-writer"

log = logging.getLogger("agentcap")


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    if turn < 0:
        log.warning("agentcap: ignoring turn %r (expected a non-negative integer)", value)
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


def iter_sse_data(text: str) -> Iterator[str]:
    """The `data:` payload of each SSE event (multi-line data joined), tolerant of CRLF."""
    data_lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            if data_lines:
                yield "\n".join(data_lines)
                data_lines = []
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
    if data_lines:
        yield "\n".join(data_lines)


class Fingerprint:
    """served_model from the first event that names one; usage from the last event that has one.

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

    def absorb_payloads(self, payloads: Iterable[str]) -> "Fingerprint":
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


class Redactor:
    """Replaces credential values with a keyed fingerprint, so reviewers can tell keys apart."""

    def __init__(self, key: bytes, extra_headers: Sequence[str]) -> None:
        self.key = key
        self.names = CREDENTIAL_HEADERS | {name.strip().lower() for name in extra_headers if name.strip()}

    @staticmethod
    def load_key(directory: Path) -> bytes:
        """A per-machine key in <agentcap_dir>/.fingerprint-key (0600), created on first use."""
        path = directory / ".fingerprint-key"
        key = Redactor.read_key(path)
        if key:
            return key
        # Written whole under a temporary name, then linked into place: a crash never leaves an empty
        # key behind, and of two proxies starting together both end up using the one that landed.
        temporary = directory / f".fingerprint-key.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode())
        if path.exists():
            os.replace(temporary, path)  # the existing file was empty or truncated
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
            os.unlink(temporary)
        return path.read_bytes().strip()

    @staticmethod
    def read_key(path: Path) -> bytes | None:
        if not path.exists():
            return None
        key = path.read_bytes().strip()
        if len(key) < 32:
            log.warning("agentcap: %s is empty or too short (interrupted creation?); making a new key", path)
            return None
        if path.stat().st_mode & 0o077:
            log.warning("agentcap: %s was readable by others; setting it to 0600", path)
            path.chmod(0o600)
        return key

    def mask(self, value: str) -> str:
        digest = hmac.new(self.key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        return f"<redacted:{digest[:12]}>"

    def headers(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, self.mask(value) if name in self.names else value) for name, value in pairs]

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        query = [
            (name, self.mask(value) if name.lower() in CREDENTIAL_QUERY_PARAMS else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return urlunsplit(parts._replace(query=urlencode(query, safe="<>:")))


def existing_max_seq(captures_path: Path) -> int:
    """Continue numbering when a run directory is reused, so seq stays unique within the run."""
    highest = 0
    try:
        with captures_path.open("rb") as handle:
            for line in handle:
                match = re.search(rb'"seq":(\d+)', line)
                if match:
                    highest = max(highest, int(match.group(1)))
    except FileNotFoundError:
        pass
    except OSError as exc:
        # A warning, not an error: mitmproxy exits on errors logged during start-up.
        log.warning("agentcap: cannot read %s (%s); seq starts at 1", captures_path, exc)
    return highest


class RunLog:
    """One run directory as the writer sees it: captures.jsonl (append-only) and run.json."""

    def __init__(self, directory: Path, run_id: str, agent: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self.agent = agent
        self.captures_path = directory / "captures.jsonl"
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.upstreams: set[str] = set()
        self.counts = {"recorded": 0, "errors": 0, "http_errors": 0, "passthrough": 0, "lost": 0}
        self.run_json_written_at = 0.0
        self.fd: int | None = None
        self.resume()

    def resume(self) -> None:
        """A reused run directory keeps its start time, upstreams and counts."""
        try:
            info = json.loads((self.directory / "run.json").read_text())
            self.started_at = datetime.fromisoformat(info["started_at"]).timestamp()
            self.upstreams.update(info.get("upstreams") or [])
            for key in self.counts:
                self.counts[key] = int((info.get("counts") or {}).get(key, 0))
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def append(self, line: bytes) -> None:
        if self.fd is None:
            self.fd = os.open(self.captures_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        view = memoryview(line)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def write_run_json(self, status: str) -> None:
        info = {
            "schema": RUN_SCHEMA,
            "run_id": self.run_id,
            "agent": self.agent,
            "status": status,
            "started_at": utc_iso(self.started_at),
            "ended_at": utc_iso(self.ended_at) if self.ended_at else None,
            "upstreams": sorted(self.upstreams),
            "counts": dict(self.counts),
            "addon_version": ADDON_VERSION,
            "mitmproxy_version": MITMPROXY_VERSION,
        }
        temporary = self.directory / f".run.json.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(temporary, self.directory / "run.json")
        self.run_json_written_at = time.time()

    def close(self, status: str) -> None:
        self.ended_at = time.time()
        RecordWriter.guarded(self.write_run_json, status)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


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
    """Everything the addon keeps about one recorded call, in flow.metadata."""

    chunks: list[bytes] = field(default_factory=list)
    streamed: bool = False

    def tee(self, chunk: bytes) -> bytes:
        # Called by mitmproxy per received chunk; returning it unchanged forwards it at once.
        if chunk:
            self.chunks.append(chunk)
        return chunk


@dataclass
class CallSnapshot(CallIdentity):
    """Plain values taken from a finished flow on the event loop; the writer builds the record.

    Only builtins inside, so it crosses to the writer process as a marshalled dict of its fields.
    """

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


Message = tuple[Any, ...]


class RecordWriter:
    """Turns finished calls into JSON lines on a thread of its own, so hooks never encode or write.

    Messages: ("run", directory, run_id, agent), ("call", snapshot fields), ("passthrough", run_id),
    ("close", status). It runs inside the writer process, or in the proxy when no process can start.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.runs: dict[str, RunLog] = {}
        self.queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.work, name="agentcap-writer", daemon=True)
        self.thread.start()

    def send(self, message: Message) -> None:
        self.queue.put(message)

    def close(self, status: str = "complete") -> None:
        self.queue.put(("close", status))
        self.thread.join()

    def work(self) -> None:
        while True:
            # Everything that queued up while the last batch was written goes out together: one
            # write per run per batch, fewer wake-ups under load.
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            pending: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
            closing: str | None = None
            for message in batch:
                kind = message[0]
                if kind == "run":
                    directory, run_id, agent = message[1:]
                    self.runs[run_id] = RunLog(Path(directory), run_id, agent)
                    self.guarded(self.runs[run_id].write_run_json, "running")
                elif kind == "call":
                    self.encode_call(CallSnapshot(**message[1]), pending)
                elif kind == "passthrough":
                    self.runs[message[1]].counts["passthrough"] += 1
                    pending.setdefault(message[1], [])
                else:
                    closing = message[1]
            for run_id, lines in pending.items():
                self.flush(self.runs[run_id], lines)
            if closing is not None:
                for run in self.runs.values():
                    run.close(closing)
                return

    def encode_call(
        self, snapshot: CallSnapshot, pending: dict[str, list[tuple[bytes, dict[str, Any]]]]
    ) -> None:
        run = self.runs[snapshot.run_id]
        try:
            record = build_record(snapshot, run.agent, self.redactor)
            line = dumps_line(record)
        except Exception:
            log.exception("agentcap: FAILED TO ENCODE a capture record; call relayed, not recorded")
            run.counts["lost"] += 1
            return
        pending.setdefault(run.run_id, []).append((line, record))
        run.upstreams.add(record["upstream_url"])

    def flush(self, run: RunLog, entries: list[tuple[bytes, dict[str, Any]]]) -> None:
        # Counted only once on disk: run.json must never claim a record that is not there.
        if entries and self.guarded(run.append, b"".join(line for line, _ in entries)):
            for _, record in entries:
                run.counts["recorded"] += 1
                run.counts["errors"] += record["error"] is not None
                run.counts["http_errors"] += (record["response"] or {}).get("status_code", 0) >= 400
        elif entries:
            run.counts["lost"] += len(entries)
            log.error(
                "agentcap: %d record(s) of run %s were relayed but not recorded", len(entries), run.run_id
            )
        if time.time() - run.run_json_written_at >= RUN_JSON_INTERVAL_S:
            self.guarded(run.write_run_json, "running")

    @staticmethod
    def guarded(write: Any, argument: Any) -> bool:
        try:
            write(argument)
            return True
        except Exception:
            # Disk full, permissions: say so loudly, keep relaying traffic.
            log.exception("agentcap: FAILED TO WRITE to the run directory")
            return False


class WriterProcess:
    """Feeds the writer in a separate process: encoding JSON there keeps it off the proxy's GIL.

    Frames on the child's stdin are a 4-byte length and a `marshal` of builtins (same interpreter on
    both ends). Writes are non-blocking and driven by mitmproxy's event loop, like an asyncio
    transport: no thread to wake per call. When the proxy is killed, the child still drains what it
    was sent, then marks the runs `interrupted`.
    """

    def __init__(self, agentcap_dir: Path, redact_headers: Sequence[str]) -> None:
        config = json.dumps({"dir": str(agentcap_dir), "redact_headers": list(redact_headers)})
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), WRITER_FLAG, config],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C meant for mitmdump must not kill it before it drains
        )
        assert self.process.stdin is not None
        self.fd = self.process.stdin.fileno()
        os.set_blocking(self.fd, False)
        self.pending = bytearray()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dead = False

    def send(self, message: Message) -> None:
        try:
            payload = marshal.dumps(message)
        except ValueError:
            log.exception("agentcap: FAILED TO ENCODE a capture record; call relayed, not recorded")
            return
        frame = len(payload).to_bytes(4, "big") + payload
        if self.pending:  # keep frames in order behind what is already waiting
            self.pending += frame
            return
        written = self.write(frame)
        if written < len(frame):
            self.pending += frame[written:]
            try:
                self.loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the event loop (start-up, tests): just wait for the pipe
                self.drain_blocking()
                return
            self.loop.add_writer(self.fd, self.drain)

    def write(self, data: bytes | bytearray) -> int:
        if self.dead:
            return len(data)
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self.dead = True
            log.error("agentcap: THE WRITER PROCESS DIED; calls are relayed but NOT RECORDED")
            return len(data)

    def drain(self) -> None:
        """Called by the event loop when the pipe can take more."""
        del self.pending[: self.write(self.pending)]
        if not self.pending and self.loop is not None:
            self.loop.remove_writer(self.fd)
            self.loop = None

    def drain_blocking(self) -> None:
        if self.loop is not None:
            self.loop.remove_writer(self.fd)
            self.loop = None
        os.set_blocking(self.fd, True)
        while self.pending:
            del self.pending[: self.write(self.pending)]
        os.set_blocking(self.fd, False)

    def close(self, status: str = "complete") -> None:
        self.send(("close", status))
        self.drain_blocking()
        assert self.process.stdin is not None
        self.process.stdin.close()
        if self.process.wait(timeout=120) != 0:
            log.error("agentcap: the writer process exited with %s", self.process.returncode)


def start_writer(agentcap_dir: Path, redact_headers: Sequence[str]) -> RecordWriter | WriterProcess:
    # A frozen mitmdump (the standalone binaries) cannot run this file with its interpreter.
    if not getattr(sys, "frozen", False):
        try:
            return WriterProcess(agentcap_dir, redact_headers)
        except OSError as exc:
            log.warning("agentcap: cannot start the writer process (%s); writing in-process", exc)
    return RecordWriter(Redactor(Redactor.load_key(agentcap_dir), redact_headers))


def writer_main(config_json: str) -> None:
    """The writer process: read framed messages from stdin until `close` or EOF."""
    config = json.loads(config_json)
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    agentcap_dir = Path(config["dir"])
    writer = RecordWriter(Redactor(Redactor.load_key(agentcap_dir), config["redact_headers"]))
    stdin = sys.stdin.buffer
    status = "interrupted"  # EOF without `close`: the proxy died
    while len(header := stdin.read(4)) == 4:
        size = int.from_bytes(header, "big")
        payload = stdin.read(size)
        if len(payload) < size:
            break  # the proxy died mid-frame: that message never completed
        message = marshal.loads(payload)
        if message[0] == "close":
            status = message[1]
            break
        writer.send(message)
    writer.close(status)


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


def build_record(snapshot: CallSnapshot, agent: str, redactor: Redactor) -> dict[str, Any]:
    request_headers = header_pairs(snapshot.request_headers)
    response_headers = header_pairs(snapshot.response_headers)
    request = {"headers": redactor.headers(request_headers)}
    request_encoding = header_value(request_headers, "content-encoding")
    request.update(body_fields(snapshot.request_raw, request_encoding))
    fingerprint = Fingerprint()
    response: dict[str, Any] | None = None
    if snapshot.response_status is not None:
        response = {
            "status_code": snapshot.response_status,
            "headers": redactor.headers(response_headers),
        }
        response_encoding = header_value(response_headers, "content-encoding")
        if snapshot.response_streamed:
            fields, text = stream_fields(snapshot.response_raw or b"", response_encoding)
            response.update(fields)
            fingerprint.absorb_payloads(iter_sse_data(text or ""))
        else:
            response.update(body_fields(snapshot.response_raw, response_encoding))
            response["stream"] = False
            body = response.get("body")
            if isinstance(body, RawJson) and isinstance(body.value, dict):
                fingerprint.absorb(body.value)
    if snapshot.websocket is not None:
        messages = snapshot.websocket["messages"]
        fingerprint.absorb_payloads(m["text"] for m in messages if m["from"] == "server" and "text" in m)
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
        "url": redactor.url(snapshot.url),
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
        "served_model": fingerprint.model,
        "usage": fingerprint.usage,
        "error": snapshot.error,
    }
    if snapshot.websocket is not None:
        record["websocket"] = snapshot.websocket
    return record


def websocket_message(message: Any) -> dict[str, Any]:
    entry = {"from": "client" if message.from_client else "server", "timestamp": message.timestamp}
    if message.is_text:
        return entry | {"text": message.text}
    return entry | {"base64": base64.b64encode(message.content).decode("ascii")}


def upstream_of(request: http.Request) -> str:
    host = f"[{request.host}]" if ":" in request.host else request.host
    default_port = {"http": 80, "https": 443}.get(request.scheme)
    port = "" if request.port == default_port else f":{request.port}"
    return f"{request.scheme}://{host}{port}"


def classify_error(flow: http.HTTPFlow) -> dict[str, str]:
    message = flow.error.msg if flow.error else "unknown error"
    lowered = message.lower()
    if "client disconnected" in lowered or "client closed" in lowered:
        kind = "client_disconnected"
    elif "timeout" in lowered or "timed out" in lowered:
        kind = "timeout"
    elif flow.response is None and (
        flow.server_conn.timestamp_tcp_setup is None or "connect" in lowered or "refused" in lowered
    ):
        kind = "upstream_unreachable"
    elif any(word in lowered for word in ("peer closed", "reset", "incomplete", "disconnected", "closed")):
        kind = "upstream_reset"
    else:
        kind = "proxy_error"
    return {"kind": kind, "message": message}


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
            raise exceptions.OptionsError(
                f"agentcap_upstream_key_fd: cannot read the upstream key from fd {fd} ({type(exc).__name__})"
            ) from None
        if len(placeholder) < 16 or not key or not host:
            raise exceptions.OptionsError("agentcap_upstream_key_fd: need a placeholder of 16+ characters")
        return cls(placeholder, key, origin)

    def swap(self, request: http.Request, extra_redacted: Sequence[str]) -> None:
        fields = request.headers.fields
        if not any(self.placeholder in value for _, value in fields):
            return
        if (request.scheme, request.host.lower(), request.port) != self.origin:
            log.warning("agentcap: a request to %s carried the key placeholder; not replaced", request.host)
            return
        # Only in headers the record redacts: the record keeps the real key's fingerprint, never the key.
        names = Redactor(b"", extra_redacted).names
        swapped = []
        for name, value in fields:
            if name.decode("latin-1").lower() in names:
                value = value.replace(self.placeholder, self.key)
            swapped.append((name, value))
        request.headers.fields = tuple(swapped)


class AgentCap:
    """The addon: tags LLM calls, tees their bodies and hands finished calls to the writer."""

    def __init__(self) -> None:
        self.last_seq: dict[str, int] = {}  # run id -> last seq handed out; the writer owns the files
        self.main_run_id: str | None = None
        self.context: dict[str, Any] = {"run": None, "task": None, "turn": None}
        self.path_patterns: list[re.Pattern[str]] = [re.compile(p) for p in DEFAULT_PATHS]
        self.in_flight: dict[str, http.HTTPFlow] = {}
        self.writer: RecordWriter | WriterProcess | None = None
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
            "one is recorded as an LLM call. Default: chat completions, Responses, Messages and legacy "
            "completions, with or without a /v1 prefix.",
        )
        loader.add_option(
            "agentcap_redact_headers",
            Sequence[str],
            [],
            "Extra header names whose values are replaced by a keyed fingerprint, on top of "
            "authorization, x-api-key, api-key, cookie, set-cookie and proxy-authorization.",
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
            "agentcap_upstream_key_fd",
            int,
            -1,
            "Inherited file descriptor holding JSON {placeholder, key, upstream}, read once at start-up "
            "(`agentcap run` sets it). Requests to that upstream get the key in place of the placeholder "
            "in their credential headers, so the agent never holds the real key.",
        )

    def configure(self, updated: set[str]) -> None:
        if "agentcap_upstream_key_fd" in updated and ctx.options.agentcap_upstream_key_fd >= 0:
            self.upstream_key = UpstreamKey.read(ctx.options.agentcap_upstream_key_fd)
        if "agentcap_lazy_connect" in updated and ctx.options.agentcap_lazy_connect:
            ctx.options.update(connection_strategy="lazy")
        if "agentcap_paths" in updated:
            try:
                self.path_patterns = [re.compile(p) for p in ctx.options.agentcap_paths]
            except re.error as exc:
                raise exceptions.OptionsError(f"agentcap_paths: invalid regular expression: {exc}") from exc
        run_id = ctx.options.agentcap_run
        if "agentcap_run" in updated and run_id and sanitize_tag(run_id) != run_id:
            raise exceptions.OptionsError(
                "agentcap_run: use letters, digits, '.', '_' and '-' only, not starting with '.' or '-'"
            )
        if updated & {"agentcap_dir", "agentcap_redact_headers"} and self.writer is not None:
            log.warning("agentcap: agentcap_dir/agentcap_redact_headers changes apply after a restart")

    def running(self) -> None:
        self.ensure_started()
        self.warn_if_open_relay()

    def done(self) -> None:
        if self.writer is None:
            return
        now = time.time()
        for flow in list(self.in_flight.values()):
            self.finish(flow, {"kind": "shutdown", "message": "proxy shut down before the call ended"}, now)
        self.writer.close()
        self.writer = None

    # ------------------------------------------------------------ HTTP hooks
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.ensure_started()
        if flow.response is not None:
            return  # already answered by mitmproxy (proxyauth's 407/401): nothing went upstream
        request = flow.request
        if self.upstream_key is not None:
            self.upstream_key.swap(request, ctx.options.agentcap_redact_headers)
        path = request.path.split("?", 1)[0]
        if path.startswith(CONTROL_PREFIX):
            flow.metadata["agentcap_control"] = True
            return
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
            assert self.writer is not None
            self.writer.send(("passthrough", run_id))
            return
        task = sanitize_tag(tags["task"]) if "task" in tags else self.context["task"]
        turn = parse_turn(tags["turn"]) if "turn" in tags else self.context["turn"]
        self.last_seq[run_id] += 1  # only the event loop touches it
        state = CallState(
            request_id=uuid.uuid4().hex,
            seq=self.last_seq[run_id],
            run_id=run_id,
            task_id=task,
            turn=turn,
            api=api_for_path(path.rstrip("/")),
            started_at=request.timestamp_start or time.time(),
        )
        flow.metadata["agentcap"] = state
        self.in_flight[flow.id] = flow

    def request(self, flow: http.HTTPFlow) -> None:
        # flow.response is already set when proxyauth rejected the client: the endpoint stays protected.
        if flow.metadata.get("agentcap_control") and flow.response is None:
            flow.response = self.control_response(flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state: CallState | None = flow.metadata.get("agentcap")
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
        if "agentcap" in flow.metadata and flow.websocket is None:
            self.finish(flow, None, time.time())

    def error(self, flow: http.HTTPFlow) -> None:
        if "agentcap" in flow.metadata and flow.id in self.in_flight:
            self.finish(flow, classify_error(flow), time.time())

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        if "agentcap" in flow.metadata and flow.id in self.in_flight:
            self.finish(flow, None, time.time())

    # ------------------------------------------------------------ internals
    def ensure_started(self) -> None:
        if self.writer is not None:
            return
        base = Path(ctx.options.agentcap_dir)
        base.mkdir(parents=True, exist_ok=True)
        Redactor.load_key(base)  # created here, before the writer process reads it
        self.writer = start_writer(base, ctx.options.agentcap_redact_headers)
        agent = sanitize_tag(ctx.options.agentcap_agent) or "unknown"
        if ctx.options.agentcap_run:
            run_id = self.open_run(ctx.options.agentcap_run)
        else:
            run_id = self.create_unique_run(base, agent)
        self.main_run_id = run_id
        log.info("agentcap: recording %s calls into %s", agent, base / run_id / "captures.jsonl")

    def create_unique_run(self, base: Path, agent: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        while True:
            run_id = f"{agent}-{stamp}-{secrets.token_hex(3)}"
            try:
                (base / run_id).mkdir(mode=0o700)
            except FileExistsError:
                continue
            return self.register_run(base / run_id, run_id)

    def open_run(self, run_id: str) -> str:
        directory = Path(ctx.options.agentcap_dir) / run_id
        if directory.exists():
            log.info("agentcap: appending to existing run %s", run_id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.register_run(directory, run_id)

    def register_run(self, directory: Path, run_id: str) -> str:
        assert self.writer is not None
        self.last_seq[run_id] = existing_max_seq(directory / "captures.jsonl")
        self.writer.send(
            ("run", str(directory), run_id, sanitize_tag(ctx.options.agentcap_agent) or "unknown")
        )
        return run_id

    def run_for(self, header_run: str | None) -> str:
        """Header beats context beats the proxy's own run."""
        requested = sanitize_tag(header_run) if header_run is not None else self.context["run"]
        run_id = requested or self.main_run_id
        assert run_id is not None
        if run_id not in self.last_seq:
            self.open_run(run_id)
        return run_id

    def control_response(self, request: http.Request) -> http.Response:
        """The out-of-band context endpoint; answered here, never forwarded upstream."""
        path = request.path.split("?", 1)[0].rstrip("/")
        if path != CONTROL_PREFIX + "context":
            return self.json_response(404, {"error": f"unknown endpoint {path}; use /_agentcap/context"})
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
                self.run_for(self.context["run"])
        elif request.method not in ("GET", "HEAD"):
            return self.json_response(405, {"error": "use GET or POST"})
        return self.json_response(200, dict(self.context))

    @staticmethod
    def json_response(status: int, payload: dict[str, Any]) -> http.Response:
        return http.Response.make(status, json.dumps(payload).encode(), {"content-type": "application/json"})

    def finish(self, flow: http.HTTPFlow, error: dict[str, str] | None, ended_at: float) -> None:
        state: CallState = flow.metadata["agentcap"]
        if self.in_flight.pop(flow.id, None) is None or self.writer is None:
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
        snapshot = CallSnapshot(
            **state.identity(),
            method=flow.request.method,
            url=flow.request.url,
            upstream_url=upstream_of(flow.request),
            http_version=flow.request.http_version,
            request_headers=flow.request.headers.fields,
            request_raw=flow.request.raw_content,
            response_status=None if response is None else response.status_code,
            response_headers=() if response is None else response.headers.fields,
            response_raw=response_raw,
            response_streamed=state.streamed,
            response_started_at=None if response is None else response.timestamp_start,
            ended_at=ended_at,
            error=error,
            websocket=websocket,
        )
        self.writer.send(("call", vars(snapshot)))
        state.chunks = []

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


addons = [AgentCap()]


if __name__ == "__main__" and sys.argv[1:2] == [WRITER_FLAG]:
    writer_main(sys.argv[2])
