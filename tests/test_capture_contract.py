"""The real addon's lines hold to the capture contract every reader decodes (exporter.core.record).

Calls of every kind go through the real mitmproxy + addon to the fake model server: chat
completions, Responses, Anthropic Messages, legacy completions and Gemini, streamed and not, a WebSocket
turn, an upstream error, a cut stream, undecodable bodies, a client that hangs up, an unreachable
upstream and a shutdown with a call in flight. Every line and every run.json is then validated
against the whole contract, and read through every view the exporter uses.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import anthropic
import msgspec
import openai
import pytest
from factories import CANARY_KEY, encode, make_record
from fake_model_server import FakeModelServer
from helpers import open_stream, post, wait_for, websocket_turn
from proxy_harness import ProxyHarness, load_addon_module

from exporter import __version__
from exporter.core.record import (
    CAPTURE_SCHEMA,
    RUN_SCHEMA,
    CaptureRecord,
    ContractError,
    IndexRecord,
    RawRecord,
    validate_record,
    validate_run_info,
)

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "héllo"}]}


def lines(runs: Path) -> list[bytes]:
    return [line for path in sorted(runs.glob("*/captures.jsonl")) for line in path.read_bytes().splitlines()]


def recorded_error(runs: Path, kind: str) -> bool:
    return any((json.loads(line)["error"] or {}).get("kind") == kind for line in lines(runs))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One proxy run holding a call of every kind, plus a run whose upstream is unreachable."""
    runs = tmp_path_factory.mktemp("contract") / "runs"
    with FakeModelServer() as upstream:
        proxy = ProxyHarness(upstream.url, runs, agentcap_run="every-kind").start()
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=CANARY_KEY, max_retries=0)
        client.chat.completions.create(**CHAT)
        list(client.chat.completions.create(**CHAT, stream=True))
        client.responses.create(model="gpt-test", input="hi")
        list(client.responses.create(model="gpt-test", input="hi", stream=True))
        client.completions.create(model="gpt-test", prompt="say hi")
        claude = anthropic.Anthropic(base_url=proxy.url, api_key=CANARY_KEY, max_retries=0)
        claude.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
        )
        with claude.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "y"}]
        ) as stream:
            "".join(stream.text_stream)
        gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        post(proxy.port, "/v1beta/models/gemini-test:generateContent", gemini)
        post(proxy.port, "/v1beta/models/gemini-test:streamGenerateContent?alt=sse", gemini)
        for scenario in ("error-500", "not-json", "gzip"):
            post(proxy.port, "/v1/chat/completions", CHAT, {"x-fake-scenario": scenario})
        for scenario in ("reset", "invalid-utf8"):
            post(proxy.port, "/v1/chat/completions", CHAT | {"stream": True}, {"x-fake-scenario": scenario})
        post(proxy.port, "/v1/chat/completions", b"\xff\xfe not json")
        websocket_turn(proxy.port, {"model": "gpt-ws", "input": "hi"}, task="ws-task")
        slow = {"x-fake-scenario": "slow", "x-fake-delay": "5"}
        open_stream(proxy.port, CHAT | {"stream": True}, slow).close()  # the client hangs up mid-stream
        wait_for(lambda: recorded_error(runs, "client_disconnected"), what="the aborted call's record")
        in_flight = open_stream(proxy.port, CHAT | {"stream": True}, slow)
        proxy.stop()  # with the slow call still streaming
        in_flight.close()
    with ProxyHarness(refused_url(), runs, agentcap_run="unreachable") as proxy:
        post(proxy.port, "/v1/chat/completions", CHAT)
    yield runs


def refused_url() -> str:
    """A loopback URL whose port refuses connections (bound, then closed)."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{placeholder.getsockname()[1]}"


def test_every_line_the_addon_writes_holds_to_the_contract(recorded: Path) -> None:
    records = [validate_record(line) for line in lines(recorded)]
    for line in lines(recorded):  # and every view the export reads decodes it too
        msgspec.json.decode(line, type=RawRecord)
        msgspec.json.decode(line, type=IndexRecord)
    kinds = {
        (record.api, record.transport, bool(record.response and record.response.stream)) for record in records
    }
    assert kinds >= {
        ("chat.completions", "http", False), ("chat.completions", "http", True),
        ("responses", "http", False), ("responses", "http", True),
        ("messages", "http", False), ("messages", "http", True),
        ("completions", "http", False), ("responses", "websocket", False),
        ("gemini.generate_content", "http", False), ("gemini.generate_content", "http", True),
    }  # fmt: skip
    errors = {record.error.kind for record in records if record.error}
    assert errors >= {"upstream_reset", "client_disconnected", "shutdown", "upstream_unreachable"}
    assert any(record.status_code == 500 and record.failed for record in records)
    messages = [message for record in records for message in (record.request, record.response) if message]
    assert any(m.body_text is not None for m in messages) and any(m.body_base64 for m in messages)
    assert any(m.raw_base64 for m in messages)


def test_every_run_json_holds_to_the_contract(recorded: Path) -> None:
    infos = [validate_run_info(path.read_bytes()) for path in sorted(recorded.glob("*/run.json"))]
    assert [info.run_id for info in infos] == ["every-kind", "unreachable"]
    assert all(info.status == "complete" for info in infos)
    assert sum(info.counts.recorded for info in infos) == len(lines(recorded))


def test_the_addon_writes_the_schemas_and_version_this_package_reads() -> None:
    addon = load_addon_module()
    assert (addon.CAPTURE_SCHEMA, addon.RUN_SCHEMA) == (CAPTURE_SCHEMA, RUN_SCHEMA)
    assert __version__ == addon.ADDON_VERSION


@pytest.mark.parametrize(
    "break_it",
    [
        lambda r: r | {"extra": 1},  # a key the contract does not know
        lambda r: {k: v for k, v in r.items() if k != "http_version"},  # a key missing
        lambda r: r | {"request": r["request"] | {"body_text": "also"}},  # two body forms
        lambda r: r | {"error": {"kind": "exploded", "message": "?"}},  # an unknown error kind
        lambda r: r | {"seq": "3"},  # a wrong type
        lambda r: r | {"transport": "websocket"},  # a WebSocket call without its log
    ],
)
def test_the_contract_refuses_what_it_does_not_describe(break_it) -> None:
    line = encode(break_it(make_record()))
    with pytest.raises(ContractError):
        validate_record(line)


def test_a_factory_record_the_contract_refuses_fails_where_it_is_made() -> None:
    with pytest.raises(ContractError, match="seq"):
        make_record(seq=0)  # seq counts from 1


def test_readers_decode_the_same_record_the_factory_builds() -> None:
    record = msgspec.json.decode(encode(make_record(seq=4, status_code=503)), type=CaptureRecord)
    assert (record.seq, record.status_code, record.failed) == (4, 503, True)
