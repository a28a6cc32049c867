"""Helpers shared by test modules (a test module never imports another test module).

Plain HTTP and WebSocket clients that talk to a proxy on loopback and hand back exactly the bytes
it sent, and `wait_for`, which polls a condition the test cannot await (a line appearing in a
file another process writes) instead of sleeping a fixed time.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage

POLL_INTERVAL_S = 0.02


def wait_for[T](condition: Callable[[], T], *, timeout: float = 20.0, what: str = "the condition") -> T:
    """`condition()` as soon as it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def post(
    port: int, path: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP POST; returns (status, lowercased headers, the exact body bytes: what arrived of
    a body the upstream cut)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, payload, {"content-type": "application/json"} | (headers or {}))
    response = connection.getresponse()
    try:
        data = response.read()
    except http.client.IncompleteRead as cut:
        data = cut.partial
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def open_stream(port: int, body: dict[str, Any], headers: dict[str, str]) -> socket.socket:
    """Start a streamed chat call and return its socket once the first event arrived (the call is in flight)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    payload = json.dumps(body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{head}"
        f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    received = b""
    while b"keep-alive" not in received:
        received += sock.recv(65536)
    return sock


def websocket_turn(port: int, request: dict[str, Any], *, task: str) -> list[dict[str, Any]]:
    """One Responses turn over a WebSocket (as Codex speaks it): the server events, then a clean close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\nx-agentcap-task: {task}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    connection = Connection(ConnectionType.CLIENT)
    create = {"type": "response.create", "response": request}
    sock.sendall(connection.send(TextMessage(data=json.dumps(create))))
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "response.completed":
        connection.receive_data(sock.recv(65536))
        events += [json.loads(e.data) for e in connection.events() if isinstance(e, TextMessage)]
    sock.sendall(connection.send(CloseConnection(code=1000)))
    connection.receive_data(sock.recv(65536))
    sock.close()
    return events
