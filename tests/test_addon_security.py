"""The addon against hostile input: web pages at the control endpoint, credential headers, planted links.

Each test drives the real mitmproxy with the addon loaded (in-process, or mitmdump itself where the
start-up path matters) in front of the loopback fake model server.
"""

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import CANARY_KEY
from fake_model_server import CHALLENGE_TOKEN, FakeModelServer
from mitmdump_process import Load, Mitmdump, read_run
from proxy_harness import ProxyHarness, assert_no_canary, chat_body, raw_post


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def context_of(proxy: ProxyHarness) -> dict[str, object]:
    assert proxy.master is not None
    return dict(proxy.master.addons.get("agentcap").context)


# ---------------------------------------------------------------- control endpoint


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Host": "evil.example"}, b'{"task": "hijacked"}', "Host"),
        ({"Origin": "http://evil.example"}, b'{"task": "hijacked"}', "Origin"),
        ({"Origin": "null"}, b'{"task": "hijacked"}', "Origin"),
        ({"Content-Type": "text/plain"}, b'{"task": "hijacked"}', "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"task=hijacked", "Content-Type"),
        (
            {"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "text/plain"},
            b'{"task": "hijacked"}',
            "Host",
        ),
    ],
)
def test_control_endpoint_refuses_what_a_web_page_can_send(
    upstream: FakeModelServer, tmp_path: Path, headers: dict[str, str], body: bytes, reason: str
) -> None:
    # keep_host_header: mitmproxy would otherwise replace the Host a browser sent before the addon sees it.
    with ProxyHarness(upstream.url, tmp_path / "runs", {"keep_host_header": True}) as proxy:
        status, _, answer = raw_post(proxy, "/_agentcap/context", body, headers)
        assert status == 403 and reason in json.loads(answer)["error"]
        assert context_of(proxy) == {"run": None, "task": None, "turn": None}
        status, _, _ = raw_post(
            proxy, "/_agentcap/context", {"task": "mine"}, {"Origin": "http://127.0.0.1:3000"}
        )
        assert status == 200 and context_of(proxy)["task"] == "mine"
    assert not (tmp_path / "runs" / "hijacked").exists()


def test_control_endpoint_token(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_control_token="s3cret-token") as proxy:
        for headers in ({}, {"X-Agentcap-Token": "wrong"}):
            status, _, answer = raw_post(proxy, "/_agentcap/context", {"task": "t"}, headers)
            assert status == 403 and "X-Agentcap-Token" in json.loads(answer)["error"]
        status, _, _ = raw_post(
            proxy, "/_agentcap/context", {"task": "t"}, {"X-Agentcap-Token": "s3cret-token"}
        )
        assert status == 200 and context_of(proxy)["task"] == "t"
    assert "s3cret-token" not in "".join(p.read_text() for p in (tmp_path / "runs").rglob("*.json*"))


def test_control_token_auto_is_generated_and_printed(upstream: FakeModelServer, tmp_path: Path) -> None:
    with Mitmdump(upstream.url, tmp_path / "runs", args=["--set", "agentcap_control_token=auto"]) as proxy:
        [line] = [line for line in proxy.log().splitlines() if "X-Agentcap-Token" in line]
        token = line.rsplit(" ", 1)[1]
        assert len(token) >= 32
        for sent, expected in ((None, 403), ("auto", 403), (token, 200)):
            headers = {"Content-Type": "application/json"} | ({"X-Agentcap-Token": sent} if sent else {})
            status = post_status(proxy.port, "/_agentcap/context", b'{"turn": 1}', headers)
            assert status == expected, sent
        assert proxy.stop() == 0


def post_status(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, body, headers)
    status = connection.getresponse().status
    connection.close()
    return status


# ---------------------------------------------------------------- credential headers and URLs


def test_provider_credential_headers_are_redacted_by_name_and_pattern(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    sigv4 = (
        f"AWS4-HMAC-SHA256 Credential=AKIAFAKE/20260101/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={CANARY_KEY}"
    )
    secret_headers = {
        "x-goog-api-key": CANARY_KEY + "-goog",
        "authorization": sigv4,
        "x-amz-security-token": CANARY_KEY + "-amz",
        "x-portkey-api-key": CANARY_KEY + "-portkey",
        "x-session-token": CANARY_KEY + "-session",
        "ocp-apim-subscription-key": CANARY_KEY + "-azure",
        "cf-access-client-secret": CANARY_KEY + "-cf",
    }
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        status, _, _ = raw_post(
            proxy, "/v1/chat/completions", chat_body(), secret_headers | {"x-fake-scenario": "error-401"}
        )
        assert status == 401
    [record] = proxy.records()
    request_headers = dict(record["request"]["headers"])
    for name in secret_headers:
        assert request_headers[name].startswith("<redacted:"), name
    assert request_headers["content-type"] == "application/json"  # ordinary headers stay as sent
    response_headers = dict(record["response"]["headers"])
    assert response_headers["www-authenticate"].startswith("<redacted:")
    assert response_headers["x-served-by"] == "fake-edge-1"
    assert_no_canary(tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CHALLENGE_TOKEN.encode() not in path.read_bytes(), path


def test_url_is_kept_byte_exact_except_redacted_query_values(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    query = f"a=1;key={CANARY_KEY}&b=%2Fx%20y&api_key={CANARY_KEY}2&empty=&flag&X-Amz-Signature={CANARY_KEY}3"
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        raw_post(proxy, "/v1/chat/completions?" + query, chat_body())
    [record] = proxy.records()
    prefix = proxy.upstream_url + "/v1/chat/completions?"
    assert record["url"].startswith(prefix)
    parts = record["url"][len(prefix) :].replace(";", "&").split("&")
    sent = query.replace(";", "&").split("&")
    assert len(parts) == len(sent)
    for stored, original in zip(parts, sent, strict=True):
        name = original.split("=", 1)[0]
        if name in ("key", "api_key", "X-Amz-Signature"):
            assert stored.startswith(name + "=<redacted:") and stored.endswith(">"), stored
        else:
            assert stored == original  # byte for byte: no re-encoding of what was not redacted
    assert record["url"][len(prefix) :].count(";") == 1  # the separator that travelled, not %3B
    assert_no_canary(tmp_path)


# ---------------------------------------------------------------- turn


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("9223372036854775807", 9223372036854775807),
        ("9223372036854775808", None),
        ("99999999999999999999", None),
    ],
)
def test_turn_header_is_bounded_to_int64(
    upstream: FakeModelServer,
    tmp_path: Path,
    header: str,
    expected: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING), ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        raw_post(proxy, "/v1/chat/completions", chat_body(), {"X-Agentcap-Turn": header})
    [record] = proxy.records()
    assert record["turn"] == expected
    assert (expected is None) == any("turn" in message for message in caplog.messages)


def test_context_turn_is_bounded_to_int64(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        status, _, body = raw_post(proxy, "/_agentcap/context", b'{"turn": ' + str(10**40).encode() + b"}")
        assert status == 200 and json.loads(body)["turn"] is None
        status, _, body = raw_post(proxy, "/_agentcap/context", {"turn": 2**63 - 1})
        assert status == 200 and json.loads(body)["turn"] == 2**63 - 1


# ---------------------------------------------------------------- planted symbolic links


def start_failure(upstream: FakeModelServer, runs: Path, **kwargs: str) -> str:
    """mitmdump must refuse to start with one line of explanation and no traceback."""
    proxy = Mitmdump(upstream.url, runs, **kwargs)
    assert proxy.run_to_exit() == 1
    log = proxy.log()
    assert "Traceback" not in log
    return log


def test_symlinked_fingerprint_key_is_refused(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not a key, but long enough to be taken for one: " + "x" * 40)
    victim.chmod(0o644)
    (runs / ".fingerprint-key").symlink_to(victim)
    log = start_failure(upstream, runs)
    assert ".fingerprint-key is a symbolic link" in log
    assert victim.stat().st_mode & 0o777 == 0o644  # not chmod'ed through the link


@pytest.mark.parametrize("planted", ["run directory", "captures.jsonl"])
def test_symlinked_main_run_is_refused(upstream: FakeModelServer, tmp_path: Path, planted: str) -> None:
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    if planted == "run directory":
        (runs / "main").symlink_to(outside, target_is_directory=True)
    else:
        (runs / "main").mkdir()
        (runs / "main" / "captures.jsonl").symlink_to(outside / "elsewhere.jsonl")
    log = start_failure(upstream, runs, run="main")
    assert "symbolic link" in log
    assert sorted(outside.iterdir()) == []


def test_symlinks_planted_while_running_are_not_followed(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    with Mitmdump(upstream.url, runs, run="main") as proxy:
        (runs / "linked-run").symlink_to(outside, target_is_directory=True)
        (runs / "linked-file").mkdir()
        (runs / "linked-file" / "captures.jsonl").symlink_to(outside / "captures.jsonl")
        completed = []
        for run in ("linked-run", "linked-file"):
            load = Load(proxy.port, 1, body_bytes=100, stream=False, headers={"x-agentcap-run": run})
            load.start().wait_for(1)
            completed += load.stop()
        assert proxy.stop() == 0
        log = proxy.log()
    assert sorted(outside.iterdir()) == []  # nothing written through either link
    assert "Traceback" not in log
    assert log.count("symbolic link") >= 2
    main = read_run(runs / "main")
    assert main.request_ids == completed  # refused runs: their calls are filed in the proxy's own run
    assert main.info["counts"]["recorded"] == len(completed)
    assert os.readlink(runs / "linked-run") == str(outside)
