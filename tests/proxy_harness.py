"""Run the real mitmproxy (in-process DumpMaster, reverse mode, port 0) with the agentcap addon.

The proxy runs on its own event loop in a thread so tests can drive it with ordinary blocking
clients (the openai/anthropic SDKs, urllib, raw sockets).
"""

import asyncio
import http.client
import importlib
import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from factories import CANARY_KEY
from mitmproxy.options import Options
from mitmproxy.tools.dump import DumpMaster

ADDON_PATH = Path(__file__).resolve().parent.parent / "addons" / "agentcap.py"


def load_addon_module() -> ModuleType:
    """The addon as installed (`agentcap_addon.agentcap`, mapped to addons/agentcap.py); mitmdump loads it with -s."""
    return importlib.import_module("agentcap_addon.agentcap")


class ProxyHarness:
    def __init__(
        self, upstream_url: str, runs_dir: Path, master_options: dict[str, Any] | None = None, **options: Any
    ) -> None:
        """`options` are set after the addon loads (like --set); `master_options` before (like a config file)."""
        self.master_options = master_options or {}
        self.upstream_url = upstream_url
        self.runs_dir = runs_dir
        # mitmdump configures every addon option at start-up; updating them all here does the same.
        defaults = {"agentcap_dir": str(runs_dir), "agentcap_agent": "tester", "agentcap_lazy_connect": True}
        self.options = defaults | options
        self.port = 0
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.master: DumpMaster | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> None:
        try:
            asyncio.run(self.main())
        except BaseException as exc:  # surfaced to the test by start()
            self.failure = exc
            self.ready.set()

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        options = Options(listen_host="127.0.0.1", listen_port=0, mode=[f"reverse:{self.upstream_url}"])
        self.master = DumpMaster(options, with_termlog=False, with_dumper=False)
        self.master.options.update(**self.master_options)
        self.master.addons.add(load_addon_module().AgentCap())
        self.master.options.update(**self.options)
        task = asyncio.create_task(self.master.run())
        proxyserver = self.master.addons.get("proxyserver")
        for _ in range(200):
            addresses = proxyserver.listen_addrs()
            if addresses:
                self.port = addresses[0][1]
                break
            await asyncio.sleep(0.02)
        self.ready.set()
        await task

    def start(self) -> "ProxyHarness":
        self.thread.start()
        self.ready.wait(20)
        if self.failure or not self.port:
            raise RuntimeError(f"proxy did not start: {self.failure!r}")
        return self

    def stop(self) -> None:
        if self.master is not None and self.thread.is_alive():
            self.master.shutdown()
            self.thread.join(20)

    def __enter__(self) -> "ProxyHarness":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def records(self) -> list[dict[str, Any]]:
        """Every record of every run, sorted by (run, seq)."""
        records = []
        for run_dir in self.run_dirs():
            path = run_dir / "captures.jsonl"
            if path.exists():
                records += [json.loads(line) for line in path.read_text().splitlines() if line]
        return sorted(records, key=lambda r: (r["run_id"], r["seq"]))


def assert_no_canary(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), f"credential leaked into {path}"


def raw_post(
    proxy: ProxyHarness, path: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP client that returns the exact bytes the proxy sent back."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, payload, {"content-type": "application/json"} | (headers or {}))
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def only_record(proxy: ProxyHarness) -> dict[str, Any]:
    proxy.stop()
    records = proxy.records()
    assert len(records) == 1, records
    return records[0]


def chat_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "héllo"}], "stream": stream} | extra
