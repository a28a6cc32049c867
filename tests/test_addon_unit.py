"""Addon behaviour below the network: options, sanitising, fingerprints, disk errors, relay warning."""

import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from fake_model_server import FakeModelServer
from mitmproxy import exceptions
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons
from proxy_harness import ProxyHarness, chat_body, load_addon_module, raw_post
from sse_vectors import SSE_CASES

agentcap = load_addon_module()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


@pytest.mark.parametrize(("option", "value"), [("agentcap_paths", ["(unclosed"]), ("agentcap_run", "../up")])
def test_bad_option_values_are_reported_in_one_line_and_stop_recording(
    option: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    addon = agentcap.AgentCap()
    with taddons.context(addon) as tctx, caplog.at_level(logging.ERROR):
        tctx.configure(addon, **{option: value})
        [message] = [m for m in caplog.messages if m.startswith("agentcap:")]
        assert option in message and "\n" not in message
        addon.ensure_started()
        assert addon.recorder is None  # mitmdump exits on the logged error; nothing half-started


def test_bad_option_values_after_start_are_rejected(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert proxy.master is not None
        with pytest.raises(exceptions.OptionsError, match="agentcap_run"):
            proxy.master.options.update(agentcap_run="../up")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("task-1", "task-1"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", None),
        ("a b/c", "a-b-c"),
        ("x" * 300, "x" * 128),
    ],
)
def test_sanitize_tag_never_names_a_path_outside(raw: str, clean: str | None) -> None:
    assert agentcap.sanitize_tag(raw) == clean


def test_lone_surrogates_still_give_a_valid_utf8_line() -> None:
    line = agentcap.dumps_line({"body": {"text": "ok \ud800 é"}})
    assert json.loads(line.decode("utf-8")) == {"body": {"text": "ok \ud800 é"}}


def test_json_bodies_are_spliced_verbatim_on_one_line() -> None:
    pretty = '{\r\n  "model": "m",\n  "messages": [{"content": "a\\nb é"}]\n}'
    fields = agentcap.body_fields(pretty.encode(), None)
    record = {"request": fields, "note": "\x00agentcap-splice-not-the-mark\x00", "lone": "\ud800"}
    line = agentcap.dumps_line(record)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    parsed = json.loads(line)
    assert parsed["request"]["body"] == {"model": "m", "messages": [{"content": "a\nb é"}]}
    assert parsed["note"] == record["note"] and parsed["lone"] == "\ud800"
    assert '"messages": [{"content": "a\\nb é"}]' in line.decode()  # the client's own bytes, not re-encoded


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b'{"x": NaN}', "body_text"), ("{}".encode("utf-16"), "body_base64"), (b"[1, 2]", "body")],
)
def test_only_strict_utf8_json_counts_as_json(body: bytes, kind: str) -> None:
    fields = agentcap.body_fields(body, None)
    assert kind in fields and json.loads(agentcap.dumps_line(fields))[kind]


def test_served_model_and_usage_from_each_stream_kind() -> None:
    anthropic = [
        '{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}',
        '{"type":"message_delta","usage":{"output_tokens":9}}',
    ]
    reported = agentcap.ModelAndUsage().absorb_payloads(anthropic)
    assert (reported.model, reported.usage) == ("claude-x", {"input_tokens": 5, "output_tokens": 9})
    responses = [
        '{"type":"response.created","response":{"model":"gpt-r","usage":null}}',
        "not json",
        "[DONE]",
    ]
    responses.append('{"type":"response.completed","response":{"model":"gpt-r","usage":{"total_tokens":3}}}')
    reported = agentcap.ModelAndUsage().absorb_payloads(responses)
    assert (reported.model, reported.usage) == ("gpt-r", {"total_tokens": 3})
    sse = 'data: {"model":"m1","usage":null}\r\n\r\n: ping\n\ndata: {"usage":{"total_tokens":2},\ndata: "model":"m2"}\n\n'
    reported = agentcap.ModelAndUsage().absorb_payloads(agentcap.iter_sse_data(sse))
    assert (reported.model, reported.usage) == ("m1", {"total_tokens": 2})


def load_key(directory: Path) -> bytes:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return agentcap.Redactor.load_key(fd, directory)
    finally:
        os.close(fd)


def test_redactor_fingerprints_are_keyed_and_distinct(tmp_path: Path) -> None:
    key = load_key(tmp_path)
    assert load_key(tmp_path) == key  # stable across runs in one agentcap_dir
    assert (tmp_path / ".fingerprint-key").stat().st_mode & 0o777 == 0o600
    redactor = agentcap.Redactor(key, ["X-Custom-Header"])
    other = agentcap.Redactor(b"another-key", [])
    fields = [
        (b"Authorization", b"Bearer a"),
        (b"X-Custom-Header", b"t"),
        (b"cookie", b"c"),
        (b"accept", b"x"),
    ]
    redacted = redactor.header_fields(fields)
    assert [value.startswith(b"<redacted:") for _, value in redacted] == [True, True, True, False]
    assert [name for name, _ in redacted] == [name for name, _ in fields]
    assert redactor.mask(b"Bearer a") != redactor.mask(b"Bearer b")
    assert redactor.mask(b"Bearer a") != other.mask(b"Bearer a")


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("authorization", True),
        ("X-Goog-Api-Key", True),
        ("x-amz-security-token", True),
        ("www-authenticate", True),
        ("ocp-apim-subscription-key", True),
        ("cf-access-client-secret", True),
        ("x-amz-date", False),
        ("idempotency-key", False),
        ("x-stainless-lang", False),
        ("content-type", False),
    ],
)
def test_credential_names(name: str, credential: bool) -> None:
    assert agentcap.is_credential_name(name) is credential


def test_proxy_switches_to_lazy_connections(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert proxy.master is not None and proxy.master.options.connection_strategy == "lazy"


def test_lazy_connect_can_be_turned_off(upstream: FakeModelServer, tmp_path: Path) -> None:
    options = {"connection_strategy": "eager"}
    with ProxyHarness(upstream.url, tmp_path / "runs", options, agentcap_lazy_connect=False) as proxy:
        assert proxy.master is not None and proxy.master.options.connection_strategy == "eager"


def test_empty_and_broken_key_files_are_replaced(tmp_path: Path) -> None:
    (tmp_path / ".fingerprint-key").write_bytes(b"")
    key = load_key(tmp_path)
    assert len(key) == 64 and (tmp_path / ".fingerprint-key").read_bytes() == key
    (tmp_path / ".fingerprint-key").chmod(0o644)
    assert load_key(tmp_path) == key
    assert (tmp_path / ".fingerprint-key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fingerprint-key"]


def test_turn_bounds() -> None:
    assert agentcap.parse_turn(" 7 ") == 7
    assert agentcap.parse_turn(str(2**63 - 1)) == 2**63 - 1
    assert agentcap.parse_turn(2**63) is None
    assert agentcap.parse_turn(-1) is None
    assert agentcap.parse_turn("1e3") is None


def test_proxyauth_protects_the_context_endpoint(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs", proxyauth="cap:s3cret") as proxy:
        status, _, _ = raw_post(proxy, "/_agentcap/context", {"task": "hijacked"})
        assert status in (401, 407)
        status, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body())
        assert status in (401, 407)
        assert proxy.master is not None
        addon = proxy.master.addons.get("agentcap")
        assert addon.context["task"] is None
    assert proxy.records() == []  # rejected calls never went upstream: nothing to record


def test_disk_errors_are_logged_and_traffic_continues(
    upstream: FakeModelServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "runs" / "full").mkdir(parents=True)
    with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_run="full") as proxy:
        (tmp_path / "runs" / "full" / "captures.jsonl").mkdir()  # every append fails from now on
        first, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body())
        second, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body(stream=True))
    assert (first, second) == (200, 200)
    errors = capfd.readouterr().err
    reported = [int(n) for n in re.findall(r"FAILED TO WRITE .*: (\d+) record\(s\) of this run", errors)]
    assert reported and reported[-1] <= 2  # reported at most once a second, with the running total
    counts = json.loads((tmp_path / "runs" / "full" / "run.json").read_text())["counts"]
    assert (counts["recorded"], counts["lost"]) == (0, 2)  # run.json never claims what is not on disk


def test_a_dead_writer_process_is_replaced_and_nothing_is_lost(
    upstream: FakeModelServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert raw_post(proxy, "/v1/chat/completions", chat_body())[0] == 200
        assert proxy.master is not None
        writer = proxy.master.addons.get("agentcap").recorder.writer
        writer.process.kill()
        writer.process.wait()
        statuses = [raw_post(proxy, "/v1/chat/completions", chat_body())[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert any("WRITER PROCESS DIED" in message for message in caplog.messages)
    assert [r["seq"] for r in proxy.records()] == [1, 2, 3, 4]
    info = json.loads((proxy.run_dirs()[0] / "run.json").read_text())
    assert (info["status"], info["counts"]["recorded"]) == ("complete", 4)


def test_reused_run_directory_continues_seq(upstream: FakeModelServer, tmp_path: Path) -> None:
    for _ in range(2):
        with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_run="fixed") as proxy:
            raw_post(proxy, "/v1/chat/completions", chat_body())
            raw_post(proxy, "/v1/chat/completions", chat_body())
    assert [r["seq"] for r in proxy.records()] == [1, 2, 3, 4]
    assert proxy.run_dirs() == [tmp_path / "runs" / "fixed"]


def test_default_run_ids_never_collide(
    upstream: FakeModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force the collision the random suffix makes rare: the same second and the same suffix twice.
    class SameSecond(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> "SameSecond":
            return cls(2026, 11, 21, 8, 15, tzinfo=tz)

    suffixes = iter(["c011de", "c011de", "0ther1"])
    real_secrets = agentcap.secrets

    class DrawnSecrets:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_secrets, name)

        def token_hex(self, size: int) -> str:
            return next(suffixes) if size == 3 else real_secrets.token_hex(size)

    monkeypatch.setattr(agentcap, "datetime", SameSecond)
    monkeypatch.setattr(agentcap, "secrets", DrawnSecrets())
    with ProxyHarness(upstream.url, tmp_path / "runs") as first:
        raw_post(first, "/v1/chat/completions", chat_body())
    with ProxyHarness(upstream.url, tmp_path / "runs") as second:
        raw_post(second, "/v1/chat/completions", chat_body())
    runs = sorted(path.name for path in (tmp_path / "runs").glob("tester-*"))
    assert runs == ["tester-20261121T081500-0ther1", "tester-20261121T081500-c011de"]
    for run in runs:  # each proxy wrote its own run, one call each
        lines = (tmp_path / "runs" / run / "captures.jsonl").read_text().splitlines()
        assert [json.loads(line)["run_id"] for line in lines] == [run]


def test_open_relay_warning(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    addon = agentcap.AgentCap()
    proxyserver = Proxyserver()
    with taddons.context(proxyserver, addon):
        monkeypatch.setattr(proxyserver, "listen_addrs", lambda: [("0.0.0.0", 8080)])
        with caplog.at_level(logging.WARNING):
            addon.warn_if_open_relay()
        assert any("without proxy authentication" in m for m in caplog.messages)
        caplog.clear()
        monkeypatch.setattr(proxyserver, "listen_addrs", lambda: [("127.0.0.1", 8080), ("::1", 8080)])
        addon.warn_if_open_relay()
        assert not caplog.messages


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SSE_CASES], ids=[c[0] for c in SSE_CASES])
def test_sse_data_agrees_with_the_exporter_vectors(text: str, expected: list[tuple[str | None, str]]) -> None:
    assert list(agentcap.iter_sse_data(text)) == [data for _, data in expected]
