"""Proxy overhead: what the capture addon costs on top of mitmdump, against mitmproxy's own dump.

One loopback fake model server (scripts/fake_model_server.py, its own process, no chunk delay) answers
OpenAI chat completions; a cheap asyncio client (hand-rolled HTTP/1.1 over keep-alive sockets, so it is
not the bottleneck) sends the same calls, streamed and not, through each configuration:

    a  direct             straight to the fake server (the floor)
    b  mitmdump           bare reverse proxy: mitmdump -q --listen-host 127.0.0.1 --mode reverse:URL
    c  mitmdump -w        b plus mitmproxy's own flow dump (-w FILE)
    d  agentcap           b plus the capture addon (-s addons/agentcap.py)
    e  mitmdump live SSE  b plus a 3-line addon that only sets response.stream for SSE (reference: the
                          cheapest live forwarding; d - e is what recording costs, e - b what going live costs)
    f  agentcap baseline  d with another version of the addon (--baseline-addon FILE, e.g. the previous
                          commit's: git show HEAD~1:addons/agentcap.py > /tmp/before.py), for before/after
                          figures from one run

Every proxy is a fresh `.venv/bin/mitmdump` subprocess per configuration and round; rounds run the
configurations interleaved (a b c d e a b c d e ...) so background load on a shared machine hits them
alike. Per configuration and mode: throughput (median over rounds), latency and time-to-first-byte
percentiles (pooled over rounds; for streams TTFB is when the first SSE bytes reach the client) and
the CPU the proxy spends per call. First streamed bytes are also timed one call at a time (idle), and a
slow stream shows whether each configuration forwards SSE live or holds it until complete: bare
mitmdump holds it, so the addon's first streamed byte is compared with a, not b. After every d run the
proxy is stopped gracefully and captures.jsonl must hold exactly one valid record per call made.

    .venv/bin/python scripts/bench/proxy_overhead.py                          # 400 calls, quick
    .venv/bin/python scripts/bench/proxy_overhead.py --calls 2000 --rounds 5  # the documented numbers
    .venv/bin/python scripts/bench/proxy_overhead.py --configs bdf --baseline-addon /tmp/before.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from factories import CANARY_KEY  # noqa: E402  (the project's one fake credential)

MITMDUMP = ROOT / ".venv" / "bin" / "mitmdump"
ADDON = ROOT / "addons" / "agentcap.py"
# The fake server sends a response head and each SSE event as separate small writes; with Nagle on, a
# write waits for the ACK the reader delays by ~40 ms, so every call would cost 40 ms and the benchmark
# would time TCP, not proxies. Real upstreams and mitmproxy (asyncio) set TCP_NODELAY, so we do too.
FAKE_SERVER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import fake_model_server as fake; "
    "fake.FakeModelHandler.disable_nagle_algorithm = True; fake.main()"
)
CONFIGS = {
    "a": "direct",
    "b": "mitmdump",
    "c": "mitmdump -w",
    "d": "agentcap",
    "e": "mitmdump live SSE",
    "f": "agentcap baseline",
}
RECORDING_CONFIGS = "df"
# Reference e: the cheapest way to make mitmdump forward SSE live (it buffers by default). d minus e is
# what recording costs; e minus b is what live forwarding itself costs mitmproxy.
LIVE_SSE_ADDON = """
def responseheaders(flow):
    if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
        flow.response.stream = True
"""
MODES = ("stream", "json")
PROBE_DELAY_S = 0.05  # between the probe's SSE events: long enough to tell live from buffered
TARGET_THROUGHPUT_VS_BARE = 0.90
TARGET_FIRST_BYTE_MS = 5.0


class BenchError(RuntimeError):
    """The benchmark itself went wrong (a failed call, a lost record): its numbers would be meaningless."""


# --- the client -----------------------------------------------------------------------------------


@dataclass
class Sample:
    ttfb_s: float
    latency_s: float


def build_request(
    port: int, *, stream: bool, prompt_bytes: int, scenario: dict[str, str] | None = None
) -> bytes:
    """One complete HTTP/1.1 request, sent with a single write (no Nagle stalls on our side)."""
    prompt = (
        "You are a careful coding agent. Read the repository before editing. " * (prompt_bytes // 70 + 1)
    )[:prompt_bytes]
    body: dict[str, object] = {
        "model": "bench-model",
        "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": "Say hello."}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body).encode()
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {CANARY_KEY}",
        "Content-Length": str(len(payload)),
    } | (scenario or {})
    head = "POST /v1/chat/completions HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + payload


async def read_response(reader: asyncio.StreamReader, started: float) -> tuple[Sample, bytes, bool]:
    """Read one response; TTFB is the head for a plain body and the first chunk's bytes for a chunked one."""
    head = await reader.readuntil(b"\r\n\r\n")
    head_at = time.perf_counter()
    status_line, *header_lines = head[:-4].split(b"\r\n")
    if status_line.split(b" ", 2)[1] != b"200":
        raise BenchError(f"call failed: {status_line.decode(errors='replace')}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    first_body_at = head_at
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    else:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, normally none
                    pass
                break
            chunk = await reader.readexactly(size + 2)
            if not parts:
                first_body_at = time.perf_counter()
            parts.append(chunk[:-2])
        body = b"".join(parts)
    ended = time.perf_counter()
    keep_alive = headers.get(b"connection") != b"close"
    return Sample(first_body_at - started, ended - started), body, keep_alive


def check_body(body: bytes, stream: bool) -> None:
    complete = body.rstrip().endswith(b"data: [DONE]") if stream else body.startswith(b'{"id": "chatcmpl-')
    if not complete:
        raise BenchError(f"unexpected {'stream' if stream else 'JSON'} body: {body[:120]!r}")


async def drive(
    port: int, request: bytes, *, calls: int, concurrency: int, stream: bool
) -> tuple[list[Sample], float]:
    """`calls` calls over `concurrency` keep-alive connections; returns samples and wall seconds."""
    tickets = iter(range(calls))
    samples: list[Sample] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in tickets:
                started = time.perf_counter()
                writer.write(request)
                sample, body, keep_alive = await read_response(reader, started)
                check_body(body, stream)
                samples.append(sample)
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.perf_counter() - started


def probe_first_byte(port: int, prompt_bytes: int) -> tuple[float, float]:
    """One stream with PROBE_DELAY_S between events: (first SSE bytes, complete) in ms."""
    scenario = {"x-fake-scenario": "slow", "x-fake-delay": str(PROBE_DELAY_S)}
    request = build_request(port, stream=True, prompt_bytes=prompt_bytes, scenario=scenario)
    samples, _ = asyncio.run(drive(port, request, calls=1, concurrency=1, stream=True))
    return samples[0].ttfb_s * 1000, samples[0].latency_s * 1000


# --- the processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until GET /health answers 200 through this port (for a proxy: all the way to the fake server)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"process exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"port {port} not serving after 30 s: {log.read_text()[-2000:]}")


@contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[psutil.Process]:
    """A subprocess serving on `port`, stopped with SIGINT (graceful: addons' done() runs)."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_until_serving(port, process, log)
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise BenchError(f"{command[0]} did not stop on SIGINT: {log.read_text()[-2000:]}") from None


def proxy_command(config: str, port: int, upstream: str, workdir: Path, baseline: Path | None) -> list[str]:
    command = [
        str(MITMDUMP),
        "-q",
        "--listen-host",
        "127.0.0.1",
        "-p",
        str(port),
        "--mode",
        f"reverse:{upstream}",
    ]
    if config == "c":
        command += ["-w", str(workdir / "flows.mitm")]
    elif config in RECORDING_CONFIGS:
        command += [
            "-s",
            str(ADDON if config == "d" else baseline),
            "--set",
            f"agentcap_dir={workdir / 'runs'}",
            "--set",
            "agentcap_agent=bench",
        ]
    elif config == "e":
        script = workdir / "live_sse.py"
        script.write_text(LIVE_SSE_ADDON)
        command += ["-s", str(script)]
    return command


def cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return time.process_time()  # the client itself
    # The proxy and its children: the capture addon encodes records in a writer process of its own.
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def verify_records(runs_dir: Path, calls_made: int, streamed_calls: int) -> str:
    """Exactly one valid record per call, none carrying an error or the canary key."""
    lines = [line for path in runs_dir.glob("*/captures.jsonl") for line in path.read_bytes().splitlines()]
    records = [json.loads(line) for line in lines]
    request_ids = {record["request_id"] for record in records}
    streamed = sum(1 for record in records if record["response"] and record["response"].get("stream"))
    errors = sum(1 for record in records if record["error"] is not None)
    leaked = any(CANARY_KEY.encode() in path.read_bytes() for path in runs_dir.rglob("*") if path.is_file())
    summary = (
        f"{len(records)} records for {calls_made} calls ({streamed}/{streamed_calls} streamed), "
        f"{len(request_ids)} distinct ids, {errors} errors, canary {'LEAKED' if leaked else 'absent'}"
    )
    if (
        len(records) != calls_made
        or len(request_ids) != calls_made
        or streamed != streamed_calls
        or errors
        or leaked
    ):
        raise BenchError("capture check failed: " + summary)
    return summary


# --- the measurements -----------------------------------------------------------------------------


@dataclass
class Settings:
    calls: int
    concurrency: int
    warmup: int
    idle_calls: int
    prompt_bytes: int


@dataclass
class ModeResult:
    throughput: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    proxy_cpu_ms_per_call: list[float] = field(default_factory=list)
    cpu_share: dict[str, list[float]] = field(
        default_factory=lambda: {"client": [], "server": [], "proxy": []}
    )


class Bench:
    """Runs configurations against one fake server and accumulates their numbers over rounds."""

    def __init__(
        self,
        settings: Settings,
        configs: str,
        server_port: int,
        server: psutil.Process,
        scratch: Path,
        baseline: Path | None = None,
    ):
        self.settings = settings
        self.baseline = baseline
        self.server_port = server_port
        self.server = server
        self.scratch = scratch
        self.results = {(config, mode): ModeResult() for config in configs for mode in MODES}
        self.idle_first_byte: dict[str, list[float]] = {config: [] for config in configs}
        self.probes: dict[str, list[tuple[float, float]]] = {config: [] for config in configs}

    def first_bytes(self, config: str, *, loaded: bool) -> list[float]:
        """Seconds to the first SSE bytes of each streamed call, under load or one call at a time."""
        if loaded:
            return [sample.ttfb_s for sample in self.results[config, "stream"].samples]
        return self.idle_first_byte[config]

    def run_config(self, config: str) -> str | None:
        """One fresh proxy (none for a): both modes, the idle series, the probe; the capture check for d."""
        workdir = Path(tempfile.mkdtemp(prefix=f"{config}-", dir=self.scratch))
        try:
            if config == "a":
                self.measure_all(config, self.server_port, None)
                return None
            port = free_port()
            command = proxy_command(
                config, port, f"http://127.0.0.1:{self.server_port}", workdir, self.baseline
            )
            with running(command, port, workdir / "mitmdump.log") as proxy:
                json_calls, stream_calls = self.measure_all(config, port, proxy)
            if config in RECORDING_CONFIGS:  # mitmdump has exited: every record must be on disk now
                return verify_records(workdir / "runs", json_calls + stream_calls, stream_calls)
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def measure_all(self, config: str, port: int, proxy: psutil.Process | None) -> tuple[int, int]:
        """Returns the calls made: (JSON, streamed)."""
        made = {mode: self.measure_mode(port, mode, self.results[config, mode], proxy) for mode in MODES}
        request = build_request(port, stream=True, prompt_bytes=self.settings.prompt_bytes)
        samples, _ = asyncio.run(
            drive(port, request, calls=self.settings.idle_calls, concurrency=1, stream=True)
        )
        self.idle_first_byte[config] += [sample.ttfb_s for sample in samples]
        made["stream"] += self.settings.idle_calls
        self.probes[config].append(probe_first_byte(port, self.settings.prompt_bytes))
        made["stream"] += 1
        return made["json"], made["stream"]

    def measure_mode(self, port: int, mode: str, result: ModeResult, proxy: psutil.Process | None) -> int:
        """Warm up, then measure one mode under load; returns how many calls were made."""
        settings = self.settings
        request = build_request(port, stream=mode == "stream", prompt_bytes=settings.prompt_bytes)
        load = {"calls": settings.calls, "concurrency": settings.concurrency, "stream": mode == "stream"}
        asyncio.run(drive(port, request, **load | {"calls": settings.warmup}))
        watched = {"client": None, "server": self.server} | ({"proxy": proxy} if proxy else {})
        before = {name: cpu_seconds(process) for name, process in watched.items()}
        samples, wall = asyncio.run(drive(port, request, **load))
        used = {name: cpu_seconds(process) - before[name] for name, process in watched.items()}
        result.throughput.append(settings.calls / wall)
        result.samples += samples
        for name, seconds in used.items():
            result.cpu_share[name].append(seconds / wall)
        if proxy:
            result.proxy_cpu_ms_per_call.append(used["proxy"] * 1000 / settings.calls)
        return settings.warmup + settings.calls


# --- report ---------------------------------------------------------------------------------------


def ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] * 1000


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(bench: Bench, configs: str) -> None:
    print(
        "\n| config | mode | calls/s (rounds min-max) | latency p50 ms | p99 ms | TTFB p50 ms | p99 ms "
        "| proxy CPU ms/call | CPU % client / server / proxy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for config, mode in itertools.product(configs, MODES):
        result = bench.results[config, mode]
        latencies = [s.latency_s for s in result.samples]
        ttfbs = [s.ttfb_s for s in result.samples]
        cpu = " / ".join(f"{statistics.median(v) * 100:.0f}" if v else "-" for v in result.cpu_share.values())
        proxy_cpu = (
            f"{statistics.median(result.proxy_cpu_ms_per_call):.2f}" if result.proxy_cpu_ms_per_call else "-"
        )
        print(
            f"| {config} {CONFIGS[config]} | {mode} | {statistics.median(result.throughput):.0f} "
            f"({min(result.throughput):.0f}-{max(result.throughput):.0f}) "
            f"| {ms(latencies, 0.5):.2f} | {ms(latencies, 0.99):.2f} | {ms(ttfbs, 0.5):.2f} | {ms(ttfbs, 0.99):.2f} "
            f"| {proxy_cpu} | {cpu} |"
        )
    print(
        f"\nFirst streamed byte: under load (concurrency {bench.settings.concurrency}), idle (concurrency 1, "
        f"{bench.settings.idle_calls} calls per round), and a slow stream ({PROBE_DELAY_S * 1000:.0f} ms between "
        "events) that shows whether the proxy forwards SSE live or holds it until complete.\n"
    )
    print(
        "| config | load p50 ms | load p99 ms | idle p50 ms | idle p99 ms | slow stream: first / complete ms |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for config in configs:
        load, idle = bench.first_bytes(config, loaded=True), bench.first_bytes(config, loaded=False)
        first, complete = (statistics.median(values) for values in zip(*bench.probes[config], strict=True))
        live = "held until complete" if first > complete * 0.8 else "live"
        print(
            f"| {config} {CONFIGS[config]} | {ms(load, 0.5):.2f} | {ms(load, 0.99):.2f} | {ms(idle, 0.5):.2f} "
            f"| {ms(idle, 0.99):.2f} | {first:.1f} / {complete:.1f} ({live}) |"
        )
    if "f" in configs and "d" in configs:
        print("\nThis addon (d) against the baseline file (f), same run:")
        for mode in MODES:
            d, f = (bench.results[c, mode] for c in "df")
            ratio = statistics.median(d.throughput) / statistics.median(f.throughput)
            cpu = statistics.median(d.proxy_cpu_ms_per_call) / statistics.median(f.proxy_cpu_ms_per_call)
            print(f"- {mode}: d/f throughput {ratio:.3f}; proxy CPU per call d/f {cpu:.3f}")
    if not set("abcd") <= set(configs):
        return

    def throughput(config: str, mode: str) -> float:
        return statistics.median(bench.results[config, mode].throughput)

    def calls_per_cpu_second(config: str, mode: str) -> float:
        # Throughput if the proxy had a core to itself: less sensitive to other load on a shared machine.
        return 1000 / statistics.median(bench.results[config, mode].proxy_cpu_ms_per_call)

    print("\nTargets (measured throughput; in brackets the same ratio from proxy CPU per call):")
    for mode in MODES:
        versus_bare = throughput("d", mode) / throughput("b", mode)
        versus_dump = throughput("d", mode) / throughput("c", mode)
        cpu_bare = calls_per_cpu_second("d", mode) / calls_per_cpu_second("b", mode)
        cpu_dump = calls_per_cpu_second("d", mode) / calls_per_cpu_second("c", mode)
        print(
            f"- {mode}: d/b throughput {versus_bare:.3f} [{cpu_bare:.3f}] (>= {TARGET_THROUGHPUT_VS_BARE:.2f}: "
            f"{verdict(versus_bare >= TARGET_THROUGHPUT_VS_BARE)}); d/c throughput {versus_dump:.3f} "
            f"[{cpu_dump:.3f}] (>= 1.00: {verdict(versus_dump >= 1)})"
        )
    if "e" in configs:
        print(
            f"- stream: d/e throughput {throughput('d', 'stream') / throughput('e', 'stream'):.3f} "
            f"[{calls_per_cpu_second('d', 'stream') / calls_per_cpu_second('e', 'stream'):.3f}] "
            "(recording on top of live forwarding; no target)"
        )
    loads = {f"under load (concurrency {bench.settings.concurrency})": True, "idle (concurrency 1)": False}
    for label, loaded in loads.items():
        median = {config: ms(bench.first_bytes(config, loaded=loaded), 0.5) for config in "ad"}
        gap = median["d"] - median["a"]
        print(
            f"- first streamed byte {label}, median d - a: {median['d']:.2f} - {median['a']:.2f} = {gap:+.2f} ms "
            f"(<= {TARGET_FIRST_BYTE_MS:.0f} ms: {verdict(gap <= TARGET_FIRST_BYTE_MS)})"
        )
    print(
        "  (compared with a, not b: bare mitmdump and -w hold a stream until it is complete, see the slow stream)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=400, help="measured calls per configuration, mode and round"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight at once")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls before each measurement")
    parser.add_argument("--idle-calls", type=int, default=200, help="streamed calls one at a time, per round")
    parser.add_argument(
        "--rounds", type=int, default=1, help="fresh processes per configuration, interleaved"
    )
    parser.add_argument(
        "--prompt-bytes", type=int, default=4096, help="size of the system prompt in each call"
    )
    parser.add_argument("--configs", default="abcde", help="which of a, b, c, d, e, f to run")
    parser.add_argument("--baseline-addon", type=Path, help="the addon file configuration f runs")
    args = parser.parse_args()
    if ("f" in args.configs) != (args.baseline_addon is not None):
        parser.error("configuration f and --baseline-addon go together")
    counts = {"--calls": args.calls, "--concurrency": args.concurrency, "--idle-calls": args.idle_calls}
    for flag, value in (counts | {"--rounds": args.rounds}).items():
        if value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.warmup < 0 or args.prompt_bytes < 0:
        parser.error("--warmup and --prompt-bytes cannot be negative")
    configs = "".join(config for config in CONFIGS if config in args.configs)
    if not configs or set(args.configs) - set(CONFIGS):
        parser.error(f"--configs takes letters from {''.join(CONFIGS)}, e.g. --configs abd")
    if not MITMDUMP.exists():
        sys.exit(f"{MITMDUMP} not found; run scripts/test.sh once to create the virtualenv")
    settings = Settings(args.calls, args.concurrency, args.warmup, args.idle_calls, args.prompt_bytes)
    print(
        f"{args.calls} calls x {len(MODES)} modes x {args.rounds} rounds per configuration, concurrency "
        f"{args.concurrency}, {args.warmup} warm-up calls, {args.prompt_bytes} B prompt; {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    scratch = Path(tempfile.mkdtemp(prefix="agentcap-proxy-bench-"))
    started = time.perf_counter()
    try:
        server_port = free_port()
        server_command = [
            sys.executable,
            "-c",
            FAKE_SERVER_BOOT,
            str(ROOT / "scripts"),
            "--port",
            str(server_port),
        ]
        with running(server_command, server_port, scratch / "fake-server.log") as server:
            bench = Bench(settings, configs, server_port, server, scratch, args.baseline_addon)
            for round_number in range(1, args.rounds + 1):
                for config in configs:
                    check = bench.run_config(config)
                    if check:
                        print(f"round {round_number}, {config} capture check: {check}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(bench, configs)
    print(
        f"\nwall {time.perf_counter() - started:.0f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"benchmark failed: {exc}")
