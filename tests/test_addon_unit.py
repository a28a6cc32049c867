"""Addon behaviour below the network: options, sanitising, fingerprints, disk errors, relay warning."""

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_model_server import FakeModelServer
from mitmproxy import exceptions
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons
from proxy_harness import ProxyHarness, load_addon_module
from test_addon_proxy import chat_body, raw_post

agentcap = load_addon_module()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def test_options_are_declared_with_help() -> None:
    addon = agentcap.AgentCap()
    with taddons.context(addon) as tctx:
        for name in (
            "agentcap_dir",
            "agentcap_run",
            "agentcap_agent",
            "agentcap_paths",
            "agentcap_redact_headers",
        ):
            assert len(tctx.options._options[name].help) > 20
        assert tctx.options.agentcap_dir == "runs" and tctx.options.agentcap_agent == "unknown"


@pytest.mark.parametrize(("option", "value"), [("agentcap_paths", ["(unclosed"]), ("agentcap_run", "../up")])
def test_bad_option_values_are_rejected(option: str, value: object) -> None:
    addon = agentcap.AgentCap()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError):
        tctx.configure(addon, **{option: value})


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


def test_fingerprints_from_each_stream_kind() -> None:
    anthropic = [
        '{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}',
        '{"type":"message_delta","usage":{"output_tokens":9}}',
    ]
    fingerprint = agentcap.Fingerprint().absorb_payloads(anthropic)
    assert (fingerprint.model, fingerprint.usage) == ("claude-x", {"input_tokens": 5, "output_tokens": 9})
    responses = [
        '{"type":"response.created","response":{"model":"gpt-r","usage":null}}',
        "not json",
        "[DONE]",
    ]
    responses.append('{"type":"response.completed","response":{"model":"gpt-r","usage":{"total_tokens":3}}}')
    fingerprint = agentcap.Fingerprint().absorb_payloads(responses)
    assert (fingerprint.model, fingerprint.usage) == ("gpt-r", {"total_tokens": 3})
    sse = 'data: {"model":"m1","usage":null}\r\n\r\n: ping\n\ndata: {"usage":{"total_tokens":2},\ndata: "model":"m2"}\n\n'
    fingerprint = agentcap.Fingerprint().absorb_payloads(agentcap.iter_sse_data(sse))
    assert (fingerprint.model, fingerprint.usage) == ("m1", {"total_tokens": 2})


def test_redactor_fingerprints_are_keyed_and_distinct(tmp_path: Path) -> None:
    key = agentcap.Redactor.load_key(tmp_path)
    assert agentcap.Redactor.load_key(tmp_path) == key  # stable across runs in one agentcap_dir
    assert (tmp_path / ".fingerprint-key").stat().st_mode & 0o777 == 0o600
    redactor = agentcap.Redactor(key, ["X-Custom-Token"])
    other = agentcap.Redactor(b"another-key", [])
    pairs = [("authorization", "Bearer a"), ("x-custom-token", "t"), ("cookie", "c"), ("accept", "x")]
    redacted = redactor.headers(pairs)
    assert [value.startswith("<redacted:") for _, value in redacted] == [True, True, True, False]
    assert redactor.mask("Bearer a") != redactor.mask("Bearer b")
    assert redactor.mask("Bearer a") != other.mask("Bearer a")


def test_proxy_switches_to_lazy_connections(upstream: FakeModelServer, tmp_path: Path) -> None:
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert proxy.master is not None and proxy.master.options.connection_strategy == "lazy"


def test_lazy_connect_can_be_turned_off(upstream: FakeModelServer, tmp_path: Path) -> None:
    options = {"connection_strategy": "eager"}
    with ProxyHarness(upstream.url, tmp_path / "runs", options, agentcap_lazy_connect=False) as proxy:
        assert proxy.master is not None and proxy.master.options.connection_strategy == "eager"


def test_empty_and_broken_key_files_are_replaced(tmp_path: Path) -> None:
    (tmp_path / ".fingerprint-key").write_bytes(b"")
    key = agentcap.Redactor.load_key(tmp_path)
    assert len(key) == 64 and (tmp_path / ".fingerprint-key").read_bytes() == key
    (tmp_path / ".fingerprint-key").chmod(0o644)
    assert agentcap.Redactor.load_key(tmp_path) == key
    assert (tmp_path / ".fingerprint-key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fingerprint-key"]


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
    (tmp_path / "runs" / "full" / "captures.jsonl").mkdir(parents=True)  # every append fails
    with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_run="full") as proxy:
        first, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body())
        second, _, _ = raw_post(proxy, "/v1/chat/completions", chat_body(stream=True))
    assert (first, second) == (200, 200)
    errors = capfd.readouterr().err
    assert "FAILED TO WRITE" in errors
    lost = [
        int(n) for n in re.findall(r"(\d+) record\(s\) of run full were relayed but not recorded", errors)
    ]
    assert sum(lost) == 2  # every lost record is reported
    counts = json.loads((tmp_path / "runs" / "full" / "run.json").read_text())["counts"]
    assert (counts["recorded"], counts["lost"]) == (0, 2)  # run.json never claims what is not on disk


def test_a_dead_writer_process_is_loud_and_traffic_continues(
    upstream: FakeModelServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert proxy.master is not None
        writer = proxy.master.addons.get("agentcap").writer
        writer.process.kill()
        writer.process.wait()
        statuses = [raw_post(proxy, "/v1/chat/completions", chat_body())[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert any("WRITER PROCESS DIED" in message for message in caplog.messages)


def test_reused_run_directory_continues_seq(upstream: FakeModelServer, tmp_path: Path) -> None:
    for _ in range(2):
        with ProxyHarness(upstream.url, tmp_path / "runs", agentcap_run="fixed") as proxy:
            raw_post(proxy, "/v1/chat/completions", chat_body())
            raw_post(proxy, "/v1/chat/completions", chat_body())
    assert [r["seq"] for r in proxy.records()] == [1, 2, 3, 4]
    assert proxy.run_dirs() == [tmp_path / "runs" / "fixed"]


def test_default_run_ids_never_collide(upstream: FakeModelServer, tmp_path: Path) -> None:
    harnesses = [ProxyHarness(upstream.url, tmp_path / "runs").start() for _ in range(3)]
    for harness in harnesses:
        harness.stop()
    names = [p.name for p in harnesses[0].run_dirs()]
    assert len(names) == 3 and all(name.startswith("tester-") for name in names)


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
