"""Rollouts throughput: MB/s and peak RSS per format on a generated corpus, vs baselines in the same run.

    .venv/bin/python scripts/bench/rollouts_throughput.py                     # quick (~30 MB Claude corpus)
    .venv/bin/python scripts/bench/rollouts_throughput.py --claude-files 2000 --claude-kb 143   # ~287 MB

Each measurement runs in a fresh process and covers the whole pipeline: manifest, hydrate, parquet
written to a temp file. Claude Code is measured twice: in one process (`-j 1`) and with `--jobs` parser
processes (default 2); the other formats with `--jobs` too (small inputs are read in one process anyway). CPU seconds include the parser
processes; peak RSS is the largest sum of RSS over the whole process tree (sampled every 10 ms; pages
shared between processes are counted in each, so it overstates). Baselines: a straightforward reader
that `json.loads` every line of every Claude file (keeping each file's lines, as a naive parser does),
and the peer figure for DataDesigner 0.9.6 on this machine kind (~40 MB/s, 400-670 MB peak RSS), which
cannot be installed here."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from exporter.rollouts.parallel import default_jobs  # noqa: E402  (needs the path above)

PEER_MB_PER_S = 40.0
PEER_RSS_MB = (400, 670)
RSS_SAMPLE_SECONDS = 0.01
CHILDREN_EVERY = 10
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "was",
    "on",
    "be",
    "by",
    "this",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def claude_file(path: Path, rng: random.Random, target_bytes: int, session: str) -> None:
    """A Claude Code session of about `target_bytes`: split responses, tool calls, bulky sidecars."""
    envelope = {
        "sessionId": session,
        "cwd": "/home/ana/proj",
        "version": "2.1.3",
        "gitBranch": "dev",
        "isSidechain": False,
        "userType": "external",
    }
    lines: list[str] = []
    size, parent, turn = 0, None, 0

    def emit(line: dict[str, Any]) -> None:
        nonlocal size, parent
        line = (
            {
                "parentUuid": parent,
                "uuid": f"{session[:8]}-{len(lines):06d}",
                "timestamp": f"2026-02-03T09:{(len(lines) // 60) % 60:02d}:{len(lines) % 60:02d}.000Z",
            }
            | envelope
            | line
        )
        text = json.dumps(line)
        lines.append(text)
        size += len(text) + 1
        parent = line["uuid"]

    emit({"type": "user", "message": {"role": "user", "content": _text(rng, 30)}})
    while size < target_bytes:
        turn += 1
        usage = {
            "input_tokens": rng.randint(10, 900),
            "output_tokens": rng.randint(10, 900),
            "cache_read_input_tokens": rng.randint(0, 90000),
            "cache_creation_input_tokens": 0,
        }
        base = {"id": f"msg_{turn}", "role": "assistant", "model": "claude-x", "usage": usage}
        emit(
            {
                "type": "assistant",
                "requestId": f"req_{turn}",
                "message": base
                | {"content": [{"type": "thinking", "thinking": _text(rng, 60), "signature": "s" * 200}]},
            }
        )
        emit(
            {
                "type": "assistant",
                "requestId": f"req_{turn}",
                "message": base | {"content": [{"type": "text", "text": _text(rng, 40)}]},
            }
        )
        emit(
            {
                "type": "assistant",
                "requestId": f"req_{turn}",
                "message": base
                | {
                    "content": [
                        {
                            "type": "tool_use",
                            "id": f"toolu_{turn}",
                            "name": "Bash",
                            "input": {"command": _text(rng, 6)},
                        }
                    ]
                },
            }
        )
        output = _text(rng, rng.randint(50, 600))
        emit(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": output}],
                },
                "toolUseResult": {"stdout": output, "stderr": "", "interrupted": False},
            }
        )
        if turn % 6 == 0:
            emit({"type": "user", "message": {"role": "user", "content": _text(rng, 25)}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_corpus(directory: Path, claude_files: int, claude_kb: int) -> dict[str, Path]:
    from rollout_fixtures import (
        build_goose_db,
        build_hermes_db,
        build_opencode_db,
        codex_lines,
        goose_session,
        hermes_session,
        opencode_session,
        pi_lines,
        write_jsonl,
    )

    rng = random.Random(7)
    corpus = {name: directory / name for name in ("claude_code", "codex", "pi")}
    for number in range(claude_files):
        session = f"{number:08x}-aaaa-4bbb-8ccc-{number:012x}"
        claude_file(
            corpus["claude_code"] / f"-home-ana-p{number % 20}" / f"{session}.jsonl",
            rng,
            claude_kb * 1024,
            session,
        )
    sessions = max(20, claude_files // 4)
    for number in range(sessions):
        lines = codex_lines()
        lines[0]["payload"]["id"] = f"codex-{number}"
        long_output = {"type": "function_call_output", "call_id": "call_a", "output": _text(rng, 3000)}
        body = lines[2:] * 8 + [
            {"timestamp": lines[0]["timestamp"], "type": "response_item", "payload": long_output}
        ]
        write_jsonl(corpus["codex"] / f"rollout-{number:05d}.jsonl", [lines[0], *body])
        pi = pi_lines()
        pi[0]["id"] = f"pi-{number}"
        pi[4]["message"]["content"][0]["text"] = _text(rng, 3000)
        write_jsonl(corpus["pi"] / f"{number:05d}_pi-{number}.jsonl", pi)
    databases = directory / "db"
    databases.mkdir()
    corpus["opencode"] = build_opencode_db(databases / "opencode.db")
    corpus["hermes"] = build_hermes_db(databases / "state.db")
    corpus["goose"] = build_goose_db(databases / "sessions.db")
    adders = {
        "opencode": lambda db, sid, n: opencode_session(db, sid, base_ms=1770110400000 + n * 10_000),
        "hermes": lambda db, sid, n: hermes_session(db, sid, 1770111600.0 + n * 10),
        "goose": lambda db, sid, n: goose_session(db, sid, 1770112200 + n * 10),
    }
    for name, add in adders.items():
        connection = sqlite3.connect(corpus[name])
        for number in range(sessions):
            add(connection, f"bench_{number:05d}", number)
        connection.commit()
        connection.close()
    return corpus


def corpus_bytes(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def worker(kind: str, path: Path, jobs: int) -> dict[str, Any]:
    """One measurement, in this process and its parser processes: seconds, CPU seconds (all of them), rows."""
    import pyarrow as pa  # here, not at the top: spawned parser processes re-import this module

    from exporter.rollouts.hydrate import iter_rows
    from exporter.rollouts.manifest import build_manifest
    from exporter.rollouts.sqlite_source import SnapshotStore
    from exporter.rollouts.writers import write_parquet

    # Fixed start-up costs are not throughput: pyarrow's first timestamp conversion loads ~0.25 s of modules.
    pa.array([datetime(2026, 1, 1)], type=pa.timestamp("ms", tz="UTC"))
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    rows = 0
    if kind == "baseline":
        for file in sorted(path.rglob("*.jsonl")):
            with file.open("rb") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
            rows += 1 if lines else 0
    else:
        with tempfile.TemporaryDirectory() as scratch, SnapshotStore() as snapshots:
            units = build_manifest([path], kind, snapshots=snapshots, warn=lambda message: None)
            rows = write_parquet(
                iter_rows(units, warn=lambda message: None, jobs=jobs), Path(scratch) / "out.parquet"
            )
    # Parser processes have exited and been waited for here, so RUSAGE_CHILDREN holds their CPU time.
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows}


def _cpu_seconds() -> float:
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def measure(kind: str, path: Path, jobs: int) -> dict[str, Any]:
    """Run one measurement in a fresh process; peak RSS is the largest sum over its whole process tree.

    Listing a process's children scans all of /proc, so it is done every CHILDREN_EVERY samples (parser
    processes live from the first batch to the end); reading each member's RSS is cheap."""
    command = [sys.executable, __file__, "--worker", kind, str(path), str(jobs)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(process.pid)
    members = [root]
    peak_bytes = 0
    for sample in itertools.count():
        if process.poll() is not None:
            break
        if sample % CHILDREN_EVERY == 0:
            with contextlib.suppress(psutil.NoSuchProcess):
                members = [root, *root.children(recursive=True)]
        total = 0
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
        peak_bytes = max(peak_bytes, total)
        time.sleep(RSS_SAMPLE_SECONDS)
    output, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{kind} measurement failed (exit {process.returncode})")
    return json.loads(output.splitlines()[-1]) | {"peak_rss_mb": peak_bytes / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--claude-files", type=int, default=200, help="Claude Code session files (2000 = full)"
    )
    parser.add_argument("--claude-kb", type=int, default=143, help="size of each Claude file in KiB")
    parser.add_argument(
        "--jobs", type=int, default=2, help="parser processes for the second claude_code run (default 2)"
    )
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PATH", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]))))
        return
    with tempfile.TemporaryDirectory(prefix="agentcap-bench-") as scratch:
        corpus = make_corpus(Path(scratch), args.claude_files, args.claude_kb)
        print(
            f"{'reader':<24}{'MB':>8}{'wall s':>8}{'MB/s':>8}{'cpu s':>8}{'MB/cpu-s':>10}"
            f"{'peak RSS MB':>13}{'rows':>7}"
        )
        runs = [
            ("json.loads baseline", "baseline", corpus["claude_code"], 1),
            ("claude_code -j 1", "claude_code", corpus["claude_code"], 1),
            (f"claude_code -j {args.jobs}", "claude_code", corpus["claude_code"], args.jobs),
            *((name, name, path, args.jobs) for name, path in corpus.items() if name != "claude_code"),
        ]
        results = {}
        for label, kind, path, jobs in runs:
            result = measure(kind, path, jobs)
            megabytes = corpus_bytes(path) / 1e6
            result["mb_per_s"] = megabytes / result["seconds"]
            result["mb_per_cpu_s"] = megabytes / result["cpu_seconds"]
            results[label] = result
            print(
                f"{label:<24}{megabytes:>8.1f}{result['seconds']:>8.2f}{result['mb_per_s']:>8.1f}"
                f"{result['cpu_seconds']:>8.2f}{result['mb_per_cpu_s']:>10.1f}{result['peak_rss_mb']:>13.0f}"
                f"{result['rows']:>7}"
            )
        baseline = results["json.loads baseline"]
        print(f"\n`agentcap rollouts` default on this machine: -j {default_jobs()}")
        for label in ("claude_code -j 1", f"claude_code -j {args.jobs}"):
            ours = results[label]
            print(
                f"{label}: vs json.loads baseline {ours['mb_per_s'] / baseline['mb_per_s']:.2f}x wall, "
                f"{ours['mb_per_cpu_s'] / baseline['mb_per_cpu_s']:.2f}x cpu; vs DataDesigner peer "
                f"({PEER_MB_PER_S:.0f} MB/s, {PEER_RSS_MB[0]}-{PEER_RSS_MB[1]} MB RSS) "
                f"{ours['mb_per_s'] / PEER_MB_PER_S:.2f}x wall, {ours['mb_per_cpu_s'] / PEER_MB_PER_S:.2f}x cpu, "
                f"{ours['peak_rss_mb']:.0f} MB peak RSS (targets >= 2x, <= 300 MB)"
            )


if __name__ == "__main__":
    main()
