"""The addon inside a real mitmproxy, in front of the loopback fake model server, driven by real clients."""

import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from mitmproxy.net import encoding as content_encoding
from proxy_harness import ProxyHarness, assert_no_canary, chat_body, only_record, raw_post


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


@pytest.fixture
def proxy(upstream: FakeModelServer, tmp_path: Path) -> Iterator[ProxyHarness]:
    harness = ProxyHarness(upstream.url, tmp_path / "runs").start()
    yield harness
    harness.stop()
    assert_no_canary(tmp_path)


def openai_client(proxy: ProxyHarness, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key=CANARY_KEY, max_retries=0, default_headers=headers
    )


def test_chat_completion_recorded_field_by_field(proxy: ProxyHarness) -> None:
    client = openai_client(proxy, **{"X-Agentcap-Task": "task-a", "X-Agentcap-Turn": "2"})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "héllo"}]
    )
    completion = raw.parse()
    request_id = raw.headers["x-agentcap-request-id"]
    record = only_record(proxy)

    assert record["schema"] == "agentcap.capture/1"
    assert record["request_id"] == request_id and len(request_id) == 32
    assert record["seq"] == 1
    assert record["run_id"] == proxy.run_dirs()[0].name
    assert record["run_id"].startswith("tester-")
    assert (record["agent"], record["task_id"], record["turn"]) == ("tester", "task-a", 2)
    assert (record["api"], record["transport"], record["method"]) == ("chat.completions", "http", "POST")
    assert record["url"] == proxy.upstream_url + "/v1/chat/completions"
    assert record["upstream_url"] == proxy.upstream_url
    assert record["http_version"] == "HTTP/1.1"
    assert abs(record["captured_at"] - time.time()) < 60
    assert 0 <= record["ttfb_ms"] <= record["duration_ms"]
    request = record["request"]
    assert request["body"] == {"messages": [{"role": "user", "content": "héllo"}], "model": "gpt-test"}
    assert request["size"] == request["wire_size"] > 0 and request["content_encoding"] is None
    headers = dict(request["headers"])
    assert headers["authorization"].startswith("<redacted:") and len(headers["authorization"]) == 23
    assert not any(name.startswith("x-agentcap-") for name in headers)
    response = record["response"]
    assert response["status_code"] == 200 and response["stream"] is False
    assert response["body"]["choices"][0]["message"]["content"] == completion.choices[0].message.content
    assert record["served_by"] == "fake-edge-1"
    assert record["served_build_info"] == "fake-build-42"
    assert record["served_model"] == "gpt-test-2026-08-07"
    assert record["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert record["error"] is None
    info = json.loads((proxy.run_dirs()[0] / "run.json").read_text())
    assert info["status"] == "complete" and info["counts"]["recorded"] == 1
    assert info["upstreams"] == [proxy.upstream_url]


def test_streamed_tool_call_with_openai_sdk(proxy: ProxyHarness) -> None:
    client = openai_client(proxy)
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "read it"}],
        tools=tools,
        stream=True,
        stream_options={"include_usage": True},
    )
    arguments = "".join(
        chunk.choices[0].delta.tool_calls[0].function.arguments or ""
        for chunk in stream
        if chunk.choices and chunk.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"path": "README.md"}
    record = only_record(proxy)
    assert record["response"]["stream"] is True
    assert '"name": "read_file"' in record["response"]["raw"]
    assert record["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert record["served_model"] == "gpt-test-2026-08-07"


def test_stream_bytes_received_equal_recorded_raw(proxy: ProxyHarness) -> None:
    status, headers, received = raw_post(proxy, "/v1/chat/completions", chat_body(stream=True))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    record = only_record(proxy)
    assert record["response"]["raw"].encode() == received
    assert received.startswith(b": keep-alive\n\n") and received.endswith(b"data: [DONE]\n\n")
    assert record["response"]["size"] == len(received)


def test_responses_api_streamed_and_not(proxy: ProxyHarness) -> None:
    client = openai_client(proxy)
    result = client.responses.create(model="gpt-test", input="hi")
    assert result.output_text == "Responses API says hi."
    events = [event.type for event in client.responses.create(model="gpt-test", input="hi", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    proxy.stop()
    first, second = proxy.records()
    assert first["api"] == second["api"] == "responses"
    assert first["response"]["body"]["output"][0]["type"] == "message"
    assert first["usage"] == second["usage"] == {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14}
    assert second["response"]["raw"].startswith("event: response.created\ndata: ")
    assert second["served_model"] == "gpt-test-2026-08-07"


def test_anthropic_messages_stream_with_x_api_key(proxy: ProxyHarness) -> None:
    # The SDK sends the key as a bearer token; x-api-key (what Claude Code sends) is added explicitly.
    client = anthropic.Anthropic(
        base_url=proxy.url, api_key=CANARY_KEY, max_retries=0, default_headers={"x-api-key": CANARY_KEY + "2"}
    )
    with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Claude-shaped hello."
    message = client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    )
    assert message.content[0].text == "Claude-shaped hello."
    proxy.stop()
    streamed, plain = proxy.records()
    assert streamed["api"] == plain["api"] == "messages"
    headers = dict(streamed["request"]["headers"])
    assert headers["x-api-key"].startswith("<redacted:") and headers["authorization"].startswith("<redacted:")
    assert headers["x-api-key"] != headers["authorization"]  # different keys, different fingerprints
    # message_start carries input tokens, message_delta the final output tokens: both kept.
    assert streamed["usage"] == {"input_tokens": 13, "output_tokens": 6}
    assert streamed["served_model"] == "claude-test-2026-08-07"
    assert "event: message_stop" in streamed["response"]["raw"]
    assert plain["response"]["body"]["stop_reason"] == "end_turn"


def test_tag_headers_are_removed_before_the_upstream(proxy: ProxyHarness) -> None:
    headers = {"X-Agentcap-Task": "t", "X-Agentcap-Turn": "1", "x-fake-scenario": "echo"}
    _, _, body = raw_post(proxy, "/v1/chat/completions", chat_body(), headers)
    seen = {name.lower() for name in json.loads(body)["headers"]}
    assert "x-fake-scenario" in seen
    assert not any(name.startswith("x-agentcap") for name in seen)
    raw_post(proxy, "/v1/chat/completions?api-version=1&key=" + CANARY_KEY, chat_body())
    proxy.stop()
    echoed, keyed = proxy.records()
    assert echoed["task_id"] == "t"
    assert keyed["url"].startswith(proxy.upstream_url + "/v1/chat/completions?api-version=1&key=<redacted:")


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/chat/completions", "chat.completions"),
        ("/v1/chat/completions/", "chat.completions"),
        ("/v1/messages?beta=true", "messages"),
        ("/v1/completions", "completions"),
        ("/responses/", "responses"),
    ],
)
def test_llm_paths_with_and_without_v1(proxy: ProxyHarness, path: str, api: str) -> None:
    raw_post(proxy, path, chat_body())
    assert only_record(proxy)["api"] == api


def test_other_requests_pass_through_unrecorded(proxy: ProxyHarness) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("GET", "/v1/models")
    assert json.loads(connection.getresponse().read())["data"][0]["id"] == "fake-model"
    connection.close()
    status, _, _ = raw_post(proxy, "/v1/embeddings", {"input": "x"})
    assert status == 404  # the upstream's answer, relayed untouched
    proxy.stop()
    assert proxy.records() == []
    info = json.loads((proxy.run_dirs()[0] / "run.json").read_text())
    assert info["counts"] == {
        "recorded": 0,
        "failed": 0,
        "errors": 0,
        "http_errors": 0,
        "passthrough": 2,
        "lost": 0,
    }


def test_upstream_error_status_is_a_response(proxy: ProxyHarness) -> None:
    client = openai_client(proxy, **{"x-fake-scenario": "error-500"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    record = only_record(proxy)
    assert record["response"]["status_code"] == 500
    assert record["response"]["body"]["error"]["message"] == "scripted 500"
    assert record["error"] is None
    info = json.loads((proxy.run_dirs()[0] / "run.json").read_text())
    assert info["counts"]["http_errors"] == 1


def test_mid_stream_reset_keeps_partial_body_and_error(proxy: ProxyHarness) -> None:
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        raw_post(proxy, "/v1/chat/completions", chat_body(stream=True), {"x-fake-scenario": "reset"})
    time.sleep(0.3)
    record = only_record(proxy)
    assert record["error"]["kind"] == "upstream_reset"
    assert record["response"]["status_code"] == 200
    assert record["response"]["raw"].startswith(": keep-alive")
    assert "[DONE]" not in record["response"]["raw"]


def test_compressed_bodies_are_stored_decoded(proxy: ProxyHarness) -> None:
    body = json.dumps(chat_body()).encode()
    status, headers, received = raw_post(
        proxy,
        "/v1/chat/completions",
        content_encoding.encode(body, "zstd"),
        {"content-encoding": "zstd", "x-fake-scenario": "gzip"},
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(received))["object"] == "chat.completion"
    record = only_record(proxy)
    assert record["request"]["content_encoding"] == "zstd"
    assert record["request"]["body"] == chat_body()
    assert record["request"]["wire_size"] == len(content_encoding.encode(body, "zstd")) and record["request"][
        "size"
    ] == len(body)
    assert record["response"]["content_encoding"] == "gzip"
    assert record["response"]["body"]["object"] == "chat.completion"


def test_gzip_stream_is_relayed_compressed_and_recorded_decoded(proxy: ProxyHarness) -> None:
    _, headers, received = raw_post(
        proxy, "/v1/chat/completions", chat_body(stream=True), {"x-fake-scenario": "gzip"}
    )
    assert headers["content-encoding"] == "gzip"
    record = only_record(proxy)
    assert record["response"]["raw"].encode() == gzip.decompress(received)


def test_invalid_utf8_and_non_json_bodies(proxy: ProxyHarness) -> None:
    _, _, streamed = raw_post(
        proxy, "/v1/chat/completions", chat_body(stream=True), {"x-fake-scenario": "invalid-utf8"}
    )
    raw_post(proxy, "/v1/chat/completions", chat_body(), {"x-fake-scenario": "not-json"})
    raw_post(proxy, "/v1/chat/completions", b"\xff\xfe not json")
    proxy.stop()
    invalid_stream, not_json, bad_request = proxy.records()
    import base64

    assert base64.b64decode(invalid_stream["response"]["raw_base64"]) == streamed
    assert "raw" not in invalid_stream["response"]
    assert not_json["response"]["body_text"] == "plain text, not json"
    assert base64.b64decode(bad_request["request"]["body_base64"]) == b"\xff\xfe not json"
    assert bad_request["response"]["status_code"] == 400


def test_unreachable_upstream_gets_error_record(tmp_path: Path) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    with ProxyHarness(f"http://127.0.0.1:{closed_port}", tmp_path / "runs") as proxy:
        status, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body())
        assert status == 502
    record = proxy.records()[0]
    assert record["response"] is None and record["ttfb_ms"] is None
    assert record["error"]["kind"] == "upstream_unreachable"
    assert record["request"]["body"] == chat_body()


def read_first_event(proxy: ProxyHarness, headers: dict[str, str]) -> tuple[socket.socket, bytes, float]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    body = json.dumps(chat_body(stream=True)).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{head}"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    started = time.monotonic()
    data = b""
    while b"keep-alive" not in data:
        data += sock.recv(65536)
    return sock, data, time.monotonic() - started


def test_slow_stream_is_not_buffered(proxy: ProxyHarness) -> None:
    sock, _, first_event_after = read_first_event(proxy, {"x-fake-scenario": "slow", "x-fake-delay": "0.4"})
    with sock:
        while not sock.recv(65536).endswith(b"0\r\n\r\n"):
            pass
    record = only_record(proxy)
    assert record["error"] is None and record["response"]["raw"].endswith("data: [DONE]\n\n")
    assert record["duration_ms"] > 4000
    # A buffering proxy would hold the first event until the upstream finished (> 4 s).
    assert first_event_after < 1.5


def test_client_abort_mid_stream_is_recorded(proxy: ProxyHarness) -> None:
    sock, _, _ = read_first_event(proxy, {"x-fake-scenario": "slow", "x-fake-delay": "0.5"})
    sock.close()
    time.sleep(1.5)
    record = only_record(proxy)
    assert record["error"]["kind"] == "client_disconnected"
    assert record["response"]["raw"].startswith(": keep-alive")


def test_shutdown_records_calls_in_flight(proxy: ProxyHarness) -> None:
    sock, _, _ = read_first_event(proxy, {"x-fake-scenario": "slow", "x-fake-delay": "5"})
    with sock:
        record = only_record(proxy)
    assert record["error"]["kind"] == "shutdown"
    assert record["response"]["raw"].startswith(": keep-alive")


def test_context_endpoint_headers_and_run_routing(proxy: ProxyHarness) -> None:
    status, _, body = raw_post(proxy, "/_agentcap/context", {"task": "ctx-task", "turn": 3})
    assert status == 200 and json.loads(body) == {"run": None, "task": "ctx-task", "turn": 3}
    raw_post(proxy, "/v1/chat/completions", chat_body())
    raw_post(proxy, "/v1/chat/completions", chat_body(), {"X-Agentcap-Task": "header-task"})
    raw_post(proxy, "/v1/chat/completions", chat_body(), {"X-Agentcap-Task": "", "X-Agentcap-Turn": " "})
    raw_post(
        proxy, "/v1/chat/completions", chat_body(), {"X-Agentcap-Run": "../../escape", "X-Agentcap-Turn": "x"}
    )
    status, _, _ = raw_post(proxy, "/_agentcap/context", b"[1, 2]")
    assert status == 400
    proxy.stop()
    by_run = {}
    for record in proxy.records():
        by_run.setdefault(record["run_id"], []).append(record)
    main_run = next(r for r in by_run if r.startswith("tester-"))
    first, second, empty_headers = by_run[main_run]
    assert (first["task_id"], first["turn"]) == ("ctx-task", 3)
    assert (second["task_id"], second["turn"]) == ("header-task", 3)  # a header beats the context
    assert (empty_headers["task_id"], empty_headers["turn"]) == ("ctx-task", 3)  # an empty one does not
    [routed] = by_run["escape"]
    assert routed["turn"] is None  # invalid turn header dropped, not the context's
    assert (proxy.runs_dir / "escape" / "captures.jsonl").exists()
    assert sorted(p.name for p in proxy.runs_dir.parent.iterdir()) == ["runs"]  # nothing outside agentcap_dir


def test_concurrent_streamed_calls_keep_their_own_records(proxy: ProxyHarness) -> None:
    calls = 200
    results: dict[int, bytes] = {}

    def call(index: int) -> None:
        _, headers, data = raw_post(
            proxy, "/v1/chat/completions", chat_body(stream=True), {"X-Agentcap-Task": f"task-{index}"}
        )
        results[index] = data + headers["x-agentcap-request-id"].encode()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    proxy.stop()
    records = proxy.records()
    assert len(records) == calls
    assert sorted(r["seq"] for r in records) == list(range(1, calls + 1))
    assert len({r["request_id"] for r in records}) == calls
    for record in records:
        index = int(record["task_id"].split("-")[1])
        assert results[index] == record["response"]["raw"].encode() + record["request_id"].encode()
    lines = (proxy.run_dirs()[0] / "captures.jsonl").read_bytes().splitlines()
    assert len(lines) == calls and all(json.loads(line) for line in lines)


def test_large_body_passes_and_is_recorded_whole(proxy: ProxyHarness) -> None:
    size = 50 * 1024 * 1024
    status, _, body = raw_post(
        proxy, "/v1/chat/completions", chat_body(), {"x-fake-scenario": "big", "x-fake-size": str(size)}
    )
    assert status == 200 and len(body) > size
    record = only_record(proxy)
    assert len(record["response"]["body"]["choices"][0]["message"]["content"]) == size


def test_upstream_that_hangs_up_after_reading_the_request_is_not_unreachable(proxy: ProxyHarness) -> None:
    status, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body(), {"x-fake-scenario": "hang-up"})
    assert status == 502
    record = only_record(proxy)
    assert record["response"] is None
    assert record["error"]["kind"] == "upstream_reset", record["error"]


def test_bare_cr_stream_keeps_served_model_and_usage(proxy: ProxyHarness) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    _, _, received = raw_post(proxy, "/v1/chat/completions", body, {"x-fake-scenario": "cr-lines"})
    assert b"\r\r" in received and b"\n" not in received.removeprefix(b": keep-alive\n\n")
    record = only_record(proxy)
    assert record["response"]["raw"].encode() == received
    assert record["served_model"] == "gpt-test-2026-08-07"
    assert record["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
