"""The addon beside mitmproxy's own tools: `-w` flow dumps, mitmweb's flow JSON, and option errors."""

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_model_server import FakeModelServer
from mitmdump_process import MITMDUMP, Load, Mitmdump, read_run
from mitmproxy import http
from mitmproxy import io as flow_io
from mitmproxy.tools.web.app import flow_to_json
from proxy_harness import ProxyHarness, chat_body, raw_post


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def test_flow_dump_with_the_addon_holds_every_flow(upstream: FakeModelServer, tmp_path: Path) -> None:
    dump = tmp_path / "flows.mitm"
    runs = tmp_path / "runs"
    with Mitmdump(upstream.url, runs, run="dumped", args=["-w", str(dump)]) as proxy:
        completed = []
        for stream in (True, False):
            load = Load(proxy.port, 4, body_bytes=1000, stream=stream).start()
            load.wait_for(20)
            completed += load.stop()
        assert proxy.stop() == 0
        log = proxy.log()
    assert "Addon error" not in log and "unserializable" not in log
    with dump.open("rb") as handle:
        flows = list(flow_io.FlowReader(handle).stream())
    assert len(flows) == len(completed)
    assert {f.response.headers["x-agentcap-request-id"] for f in flows} == set(completed)
    assert all(f.metadata == {} for f in flows)
    readback = subprocess.run(
        [str(MITMDUMP), "-n", "-r", str(dump), "--set", "flow_detail=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert readback.returncode == 0, readback.stderr
    assert readback.stdout.count("POST") == len(completed)
    assert len(read_run(runs / "dumped").records) == len(completed)


class FlowJsonProbe:
    """Loaded after the addon: serialises each finished flow the way mitmweb and `-w` do."""

    def __init__(self) -> None:
        self.serialised: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def check(self, flow: http.HTTPFlow) -> None:
        try:
            self.serialised.append(json.loads(json.dumps(flow_to_json(flow))))
            flow_io.FlowWriter(io.BytesIO()).add(flow)
            http.HTTPFlow.from_state(flow.get_state())
        except Exception as exc:  # any failure is the finding
            self.problems.append(repr(exc))

    def response(self, flow: http.HTTPFlow) -> None:
        self.check(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.check(flow)


def test_mitmweb_flow_json_and_state_work_with_the_addon(upstream: FakeModelServer, tmp_path: Path) -> None:
    probe = FlowJsonProbe()
    with ProxyHarness(upstream.url, tmp_path / "runs") as proxy:
        assert proxy.master is not None
        proxy.master.addons.add(probe)
        raw_post(proxy, "/v1/chat/completions", chat_body())
        raw_post(proxy, "/v1/chat/completions", chat_body(stream=True))
        raw_post(proxy, "/_agentcap/context", {"task": "t"})
    assert probe.problems == []
    assert len(probe.serialised) == 3


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("agentcap_dir=/proc/nope", "agentcap_dir"),
        ("agentcap_run=my run/1", "agentcap_run"),
        ("agentcap_paths=(unclosed", "agentcap_paths"),
    ],
)
def test_bad_option_values_give_one_line_and_no_traceback(
    upstream: FakeModelServer, tmp_path: Path, option: str, expected: str
) -> None:
    directory = [] if option.startswith("agentcap_dir=") else ["--set", f"agentcap_dir={tmp_path / 'runs'}"]
    result = subprocess.run(
        [
            *(str(MITMDUMP), "-s", str(Path(__file__).parent.parent / "addons" / "agentcap.py")),
            *("--listen-host", "127.0.0.1", "-p", "0", "--mode", f"reverse:{upstream.url}"),
            *directory,
            *("--set", option),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if expected in line and "agentcap" in line]
    assert len(line) < 300
