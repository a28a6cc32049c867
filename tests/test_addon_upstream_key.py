"""The addon's key swap for `agentcap run`: the agent sends a placeholder, the upstream gets the real key.

The record keeps the keyed fingerprint of the key that went upstream (the real one); the key itself
never reaches the disk, and it is attached only to requests bound for the configured upstream.
"""

import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from proxy_harness import ProxyHarness, load_addon_module

PLACEHOLDER = "agentcap-placeholder-" + "5a" * 16


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def key_pipe(payload: bytes) -> int:
    """The read end of a pipe holding `payload`, as `agentcap run` hands it to mitmdump."""
    read, write = os.pipe()
    os.write(write, payload)
    os.close(write)
    return read


def key_fd(upstream_url: str) -> int:
    return key_pipe(
        json.dumps({"placeholder": PLACEHOLDER, "key": CANARY_KEY, "upstream": upstream_url}).encode()
    )


def files_holding(root: Path, needle: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def post(proxy: ProxyHarness, path: str, headers: dict[str, str]) -> None:
    body = json.dumps({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        proxy.url + path, body.encode(), headers | {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_placeholder_goes_upstream_as_the_real_key_and_the_record_keeps_its_fingerprint(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    before = len(upstream.seen)
    with ProxyHarness(
        upstream.url,
        runs,
        agentcap_upstream_key_fd=key_fd(upstream.url),
        agentcap_redact_headers=["x-goog-api-key"],
    ) as proxy:
        openai.OpenAI(base_url=proxy.url + "/v1", api_key=PLACEHOLDER, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-note": PLACEHOLDER}
        )
        post(proxy, "/v1/messages", {"x-api-key": PLACEHOLDER, "anthropic-version": "2023-06-01"})
        post(
            proxy,
            "/v1/chat/completions",
            {"x-goog-api-key": PLACEHOLDER, "authorization": "Bearer unrelated"},
        )
    chat, messages, gemini_style = upstream.seen[before:]

    assert chat["headers"]["authorization"] == f"Bearer {CANARY_KEY}"
    assert chat["headers"]["x-note"] == PLACEHOLDER  # not a credential header: left alone
    assert messages["headers"]["x-api-key"] == CANARY_KEY
    assert gemini_style["headers"]["x-goog-api-key"] == CANARY_KEY  # a credential header: swapped too
    assert gemini_style["headers"]["authorization"] == "Bearer unrelated"
    redactor = load_addon_module().Redactor(
        (runs / ".fingerprint-key").read_bytes().strip(), ["x-goog-api-key"]
    )
    records = proxy.records()
    assert (
        dict(records[0]["request"]["headers"])["authorization"]
        == redactor.mask(f"Bearer {CANARY_KEY}".encode()).decode()
    )
    assert dict(records[1]["request"]["headers"])["x-api-key"] == redactor.mask(CANARY_KEY.encode()).decode()
    assert (
        dict(records[2]["request"]["headers"])["x-goog-api-key"]
        == redactor.mask(CANARY_KEY.encode()).decode()
    )
    assert files_holding(tmp_path, CANARY_KEY) == []


def test_the_key_is_never_attached_for_another_destination(upstream: FakeModelServer, tmp_path: Path) -> None:
    elsewhere = "http://127.0.0.1:9"  # the key belongs to this upstream, not to the one the proxy forwards to
    before = len(upstream.seen)
    with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_upstream_key_fd=key_fd(elsewhere)) as proxy:
        openai.OpenAI(base_url=proxy.url + "/v1", api_key=PLACEHOLDER, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    [seen] = upstream.seen[before:]
    assert seen["headers"]["authorization"] == f"Bearer {PLACEHOLDER}"


def test_an_unreadable_key_handover_stops_the_proxy_without_quoting_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = key_pipe(b'{"placeholder": "short", "key": "' + CANARY_KEY.encode() + b'"')
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError) as failure:
        ProxyHarness("http://127.0.0.1:9", tmp_path / "runs", agentcap_upstream_key_fd=garbage).start()
    [message] = [m for m in caplog.messages if "agentcap_upstream_key_fd" in m]
    assert "cannot read the upstream key from fd" in message
    assert CANARY_KEY not in message + str(failure.value)
