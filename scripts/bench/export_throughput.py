"""Export throughput: `agentcap export` against the obvious ways to turn captures.jsonl into parquet.

Generates a synthetic run (conversations growing turn by turn, each request carrying 12 tool
definitions as real agents send them, half the calls streamed; 10,000 calls is about 1.1 GB of
JSONL), then times, each in a fresh subprocess that reports its own peak RSS:

- ours:      the exporter's build stage (index pass + raw-bytes row pass → zstd parquet)
- simple:    json.loads per line → the same columns → pyarrow ParquetWriter in batches (snappy)
- datasets:  datasets.Dataset.from_json(path).to_parquet(out)
- pandas:    pandas.read_json(path, lines=True).to_parquet(out)

and our peak RSS at 1/10, 1/2 and all of the calls (flat memory means these stay level).

    .venv/bin/python scripts/bench/export_throughput.py                 # 1,000 calls, quick
    .venv/bin/python scripts/bench/export_throughput.py --calls 10000 --repeat 3  # documented numbers
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factories import make_record  # noqa: E402  (the capture-format contract's own builder)

CALLS_PER_TASK = 50
# Coding agents send their tool definitions (JSON schemas) with every request; 12 like these.
AGENT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ').capitalize()} in the workspace. Use it when the task needs it.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "workspace-relative path"},
                    "pattern": {"type": "string", "description": "glob or regular expression"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 2000},
                    "options": {
                        "type": "object",
                        "properties": {"recursive": {"type": "boolean"}, "encoding": {"type": "string"}},
                    },
                },
                "required": ["path"],
            },
        },
    }
    for name in (
        "read_file", "write_file", "edit_file", "list_dir", "glob", "grep",
        "run_shell", "run_tests", "git_diff", "git_status", "web_fetch", "todo_write",
    )
]  # fmt: skip
TOOL_OUTPUT_CHARS = 4_000
METHODS = ("ours", "simple", "datasets", "pandas")


# --- synthetic run --------------------------------------------------------------------------------


def _text_pool(rng: random.Random, count: int) -> list[str]:
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)]
    pool = []
    for _ in range(count):
        lines, size = [], 0
        while size < TOOL_OUTPUT_CHARS:
            line = " ".join(rng.choices(words, k=rng.randint(4, 14)))
            lines.append(line)
            size += len(line) + 1
        pool.append("\n".join(lines))
    return pool


def write_synthetic_run(run_dir: Path, calls: int, seed: int = 7) -> None:
    """A run whose conversations grow by a tool call + ~4 KB tool output per call."""
    rng = random.Random(seed)
    pool = _text_pool(rng, 500)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.name
    with (run_dir / "captures.jsonl").open("w", encoding="utf-8") as handle:
        messages: list[dict[str, Any]] = []
        for seq in range(1, calls + 1):
            step = (seq - 1) % CALLS_PER_TASK
            task = f"task-{(seq - 1) // CALLS_PER_TASK + 1:04d}"
            if step == 0:
                messages = [
                    {"role": "system", "content": "You are a coding agent. " + pool[seq % len(pool)][:1500]},
                    {"role": "user", "content": f"Fix the failing tests in module {task}."},
                ]
            else:
                call_id = f"call_{seq}"
                arguments = json.dumps({"cmd": f"pytest -x tests/test_{step}.py"})
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": "shell", "arguments": arguments},
                            }
                        ],
                    }
                )
                messages.append({"role": "tool", "tool_call_id": call_id, "content": rng.choice(pool)})
            record = make_record(
                seq=seq,
                run_id=run_id,
                task_id=task,
                turn=step // 10 + 1,
                model="bench-org/bench-model",
                messages=messages,
                stream=seq % 2 == 0,
                reply=" ".join(rng.choice(pool).split()[:60]),
            )
            record["request"]["body"]["tools"] = AGENT_TOOLS
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    run_json = {"schema": "agentcap.run/1", "run_id": run_id, "agent": "bench", "status": "complete"}
    (run_dir / "run.json").write_text(json.dumps(run_json) + "\n")


def prefix_run(source: Path, target: Path, calls: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "run.json", target / "run.json")
    with (source / "captures.jsonl").open("rb") as reader, (target / "captures.jsonl").open("wb") as writer:
        for _, line in zip(range(calls), reader, strict=False):
            writer.write(line)


# --- the methods (run inside a child process) -----------------------------------------------------


def run_ours(run_dir: Path, out: Path) -> None:
    from rich.console import Console

    from exporter.export.build.stage import build_export
    from exporter.shared.runs import RunDir

    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115  (no progress bar in timings)
    build_export([RunDir.load(run_dir)], owner="bench", base="bench", staging=out, console=console)


def _simple_row(record: dict[str, Any]) -> dict[str, Any]:
    response = record["response"]
    if response is None:
        response_json = json.dumps({"error": record["error"]})
    elif response.get("stream"):
        response_json = json.dumps({"stream": True, "raw": response.get("raw")}, ensure_ascii=False)
    else:
        response_json = json.dumps(response.get("body"), ensure_ascii=False)
    return {
        "request_id": record["request_id"],
        "model": record["request"]["body"].get("model", ""),
        "captured_at": record["captured_at"],
        "task_id": record["task_id"],
        "turn": record["turn"],
        "request": json.dumps(record["request"]["body"], ensure_ascii=False),
        "response": response_json,
        "served_by": record["served_by"],
        "served_model": record["served_model"],
        "upstream_url": record["upstream_url"],
        "run_id": record["run_id"],
        "seq": record["seq"],
        "usage": json.dumps(record["usage"]) if record["usage"] else None,
        "error": json.dumps(record["error"]) if record["error"] else None,
    }


def run_simple(run_dir: Path, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    batch: list[dict[str, Any]] = []
    with (run_dir / "captures.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            batch.append(_simple_row(json.loads(line)))
            if len(batch) == 256:
                table = pa.Table.from_pylist(batch)
                writer = writer or pq.ParquetWriter(out / "simple.parquet", table.schema)
                writer.write_table(table)
                batch = []
    if batch:
        table = pa.Table.from_pylist(batch)
        writer = writer or pq.ParquetWriter(out / "simple.parquet", table.schema)
        writer.write_table(table)
    if writer:
        writer.close()


def run_datasets(run_dir: Path, out: Path) -> None:
    import datasets

    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_json(str(run_dir / "captures.jsonl"), cache_dir=str(out / "cache"))
    dataset.to_parquet(str(out / "datasets.parquet"))
    shutil.rmtree(out / "cache", ignore_errors=True)


def run_pandas(run_dir: Path, out: Path) -> None:
    import pandas

    pandas.read_json(run_dir / "captures.jsonl", lines=True).to_parquet(out / "pandas.parquet")


def child_main(method: str, run_dir: Path, out: Path) -> None:
    started = time.perf_counter()
    globals()[f"run_{method}"](run_dir, out)
    seconds = time.perf_counter() - started
    parquet_bytes = sum(path.stat().st_size for path in out.rglob("*.parquet"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime  # every thread; steadier than wall time on a busy machine
    result = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}
    print(json.dumps(result | {"parquet_bytes": parquet_bytes}))


def measure(method: str, run_dir: Path, scratch: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix=f"{method}-", dir=scratch))
    try:
        result = subprocess.run(
            [sys.executable, __file__, "--child", method, str(run_dir), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls in the synthetic run (10000 ≈ 1 GB)")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS)
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where to put the run (default: a temp dir)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the median round is reported")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "RUN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, run, out = args.child
        child_main(method, Path(run), Path(out))
        return
    scratch = Path(tempfile.mkdtemp(prefix="agentcap-bench-", dir=args.scratch))
    try:
        report(args.calls, [m for m in args.methods.split(",") if m], scratch, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def median_result(results: list[dict[str, float]]) -> dict[str, float]:
    return sorted(results, key=lambda result: result["seconds"])[len(results) // 2]


def report(calls: int, methods: list[str], scratch: Path, repeat: int) -> None:
    run_dir = scratch / "bench-run"
    started = time.perf_counter()
    write_synthetic_run(run_dir, calls)
    jsonl_mb = (run_dir / "captures.jsonl").stat().st_size / 1e6
    print(f"synthetic run: {calls} calls, {jsonl_mb:.0f} MB JSONL ({time.perf_counter() - started:.0f} s)")
    # Rounds interleave the methods, and each method's median round is reported: on a shared
    # machine, load that comes and goes then hits every method alike.
    rounds = [{method: measure(method, run_dir, scratch) for method in methods} for _ in range(repeat)]
    results = {method: median_result([one[method] for one in rounds]) for method in methods}
    ours = results.get("ours")
    header = f"{'method':<10}{'wall s':>8}{'MB/s':>7}{'CPU s':>8}{'peak RSS MB':>13}{'parquet MB':>12}"
    print(f"\n{header}{'ours faster (wall / CPU)':>27}   (median of {repeat} round(s))")
    for method, result in results.items():
        ratio = "-"
        if ours and method != "ours":
            wall, cpu = result["seconds"] / ours["seconds"], result["cpu_seconds"] / ours["cpu_seconds"]
            ratio = f"{wall:.1f}x / {cpu:.1f}x"
        print(
            f"{method:<10}{result['seconds']:>8.2f}{jsonl_mb / result['seconds']:>7.0f}{result['cpu_seconds']:>8.2f}"
            f"{result['peak_rss_mb']:>13.0f}{result['parquet_bytes'] / 1e6:>12.1f}{ratio:>27}"
        )
    if ours and "simple" in results:
        smaller = results["simple"]["parquet_bytes"] / ours["parquet_bytes"]
        print(f"\noutput size: snappy (simple) / zstd (ours) = {smaller:.1f}x")
    if ours:
        print("\nour peak RSS by run size (flat memory):")
        for share in (10, 2, 1):
            count = calls // share
            prefix = scratch / f"bench-run-{count}"
            prefix_run(run_dir, prefix, count)
            result = measure("ours", prefix, scratch)
            print(f"  {count:>6} calls: {result['peak_rss_mb']:>5.0f} MB peak RSS, {result['seconds']:.2f} s")
            shutil.rmtree(prefix)


if __name__ == "__main__":
    main()
