"""Fleet export: the build stage of `agentcap export` over many runs with each engine and worker count.

Makes RUNS synthetic runs of about RUN_MB each (the export throughput benchmark's growing agent
conversations), then times the export's per-run work (index, parquet, trace copy; the secret scan
too with --scan) for every engine with 1 and 2 workers, and prints the speed-up of each against
the single-process run (`--engine local`) measured in the same invocation. Ray runs on a local
instance started once before the timings (a fleet's cluster is up already); its start is printed.

    .venv/bin/python scripts/bench/fleet_export.py                      # 32 runs x ~30 MB
    .venv/bin/python scripts/bench/fleet_export.py --repeat 3           # the documented numbers
    .venv/bin/python scripts/bench/fleet_export.py --runs 8 --run-mb 10  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "bench"), str(ROOT / "tests")]

from export_throughput import write_synthetic_run  # noqa: E402  (the same synthetic conversations)

BYTES_PER_CALL = 112_000  # measured for write_synthetic_run's calls (10,000 calls ~ 1.1 GB)


def make_runs(root: Path, runs: int, run_mb: float) -> list[Path]:
    """One synthetic run, copied into `runs` run dirs with their own run ids (same bytes each).

    Copies, not hard links: workers reading one shared file contend for its page-cache pages, which
    a fleet's distinct runs never do (measured: 2 workers no faster than 1 on hard links).
    """
    template = root / "template"
    write_synthetic_run(template, calls=max(1, int(run_mb * 1_000_000 / BYTES_PER_CALL)))
    dirs = []
    for number in range(runs):
        run_dir = root / "runs" / f"bench-20261121T{number:06d}-{number:06x}"
        run_dir.mkdir(parents=True)
        shutil.copyfile(template / "captures.jsonl", run_dir / "captures.jsonl")
        run_json = {
            "schema": "agentcap.run/1",
            "run_id": run_dir.name,
            "agent": "bench",
            "status": "complete",
        }
        (run_dir / "run.json").write_text(json.dumps(run_json) + "\n")
        dirs.append(run_dir)
    return dirs


def time_export(run_dirs: list[Path], engine: str, workers: int, scan: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one build of every run."""
    from rich.console import Console

    from exporter.engines import EngineOptions
    from exporter.export.build.stage import build_export
    from exporter.scan.types import ScanOptions
    from exporter.shared.runs import RunDir

    runs = [RunDir.load(path) for path in run_dirs]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as staging, open(os.devnull, "w") as null:
        started, cpu = time.perf_counter(), time.process_time()
        build_export(
            runs,
            owner="bench",
            base="bench",
            staging=Path(staging),
            console=Console(file=null),
            scan=ScanOptions(verify=False, rescan=True) if scan else None,
            engine=EngineOptions(engine, workers),  # type: ignore[arg-type]
        )
        return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--run-mb", type=float, default=30.0)
    parser.add_argument("--scan", action="store_true", help="Include the secret scan (kingfisher, offline).")
    parser.add_argument("--engines", default="local,processes,ray")
    parser.add_argument("--repeat", type=int, default=1, help="Rounds; the median is printed.")
    args = parser.parse_args()
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-data-") as scratch:
        run_dirs = make_runs(Path(scratch), args.runs, args.run_mb)
        total = sum(path.stat().st_size for run in run_dirs for path in [run / "captures.jsonl"])
        print(
            f"{args.runs} runs, {total / args.runs / 1e6:.1f} MB each ({total / 1e9:.2f} GB of JSONL), "
            f"scan {'on' if args.scan else 'off'}, {os.cpu_count()} CPUs"
        )
        if "ray" in engines:
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            print(
                f"ray: local instance started in {time.perf_counter() - started:.1f} s (not in the timings)"
            )
        configs = [("local", 1)] + [
            (name, workers) for name in engines if name != "local" for workers in (1, 2)
        ]
        walls: dict[tuple[str, int], list[float]] = {config: [] for config in configs}
        local_cpu = []
        for _ in range(args.repeat):  # rounds interleave the configurations: load changes hit them all
            for config in configs:
                wall, cpu = time_export(run_dirs, *config, args.scan)
                walls[config].append(wall)
                if config == ("local", 1):
                    local_cpu.append(cpu)
        median = {config: statistics.median(times) for config, times in walls.items()}
        baseline = median[("local", 1)]
        print(
            f"local: {statistics.median(local_cpu):.1f} CPU s in {baseline:.1f} s wall "
            f"(CPU/wall {statistics.median(local_cpu) / baseline:.2f}; above 1: its parquet writer thread works alongside)"
        )
        print(
            f"{'engine':<10} {'workers':>7} {'seconds':>8} {'MB/s':>7} {'s/run':>6} {'vs local':>8} {'vs 1 worker':>11}"
        )
        for engine, workers in configs:
            seconds = median[(engine, workers)]
            one = median[(engine, 1)]
            print(
                f"{engine:<10} {workers:>7} {seconds:>8.1f} {total / seconds / 1e6:>7.1f} "
                f"{seconds / args.runs:>6.2f} {baseline / seconds:>7.2f}x {one / seconds:>10.2f}x"
            )
        shutil.rmtree(Path(scratch) / "runs")


if __name__ == "__main__":
    main()
