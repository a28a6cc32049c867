"""`agentcap inspect` on a Hub dataset: how fast the file list appears and how little it downloads.

Builds a captures dataset of N parquet files (one synthetic run each: conversations growing call by
call with varied tool output, exported by the real exporter), serves it from the loopback fake Hub,
then measures, in the same run:

- ours:      the picker (headless Textual) on `HubSource`: time until the file list is rendered,
             time until every row is labelled from its footer, and bytes fetched before a file is
             opened (ranged footer reads only).
- baseline:  what a browser without footer reads does to label the same files: download each one
             (`hf_hub_download`) and read its metadata.

Targets: first rendered file list < 1 s; bytes before opening <= 1% of the dataset.

    .venv/bin/python scripts/bench/inspect_hub.py              # 100 files
    .venv/bin/python scripts/bench/inspect_hub.py --files 20   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pyarrow.parquet as pq  # noqa: E402
from factories import export_parquet, make_record, write_run  # noqa: E402
from fake_hub import FakeHub  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub.utils import disable_progress_bars  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from exporter.inspect.app import InspectApp  # noqa: E402
from exporter.inspect.hub_source import HubSource  # noqa: E402

REPO = "bench/agent-captures"
TOOL_OUTPUT_CHARS = 16_000
SYSTEM_PROMPT = "You are a coding agent. Use the tools. " * 50


def tool_output(rng: random.Random, chars: int) -> str:
    """Text about as compressible as real tool output (code, logs): random identifiers and numbers."""
    words, size = [], 0
    while size < chars:
        words.append(rng.choice(("def ", "self.", "assert ", "error: ", "")) + f"{rng.getrandbits(24):x}")
        size += len(words[-1]) + 1
    return " ".join(words)


def synthetic_run(runs_dir: Path, number: int, calls: int, rng: random.Random) -> Path:
    """One agent run: `calls` calls over 4 tasks, each carrying fresh tool output (~16 KB).

    The history is not resent here: zstd folds resent history away, so what sizes a file is the
    fresh text per call. 150 such calls make a ~1 MB file, what a typical agent run exports to.
    """
    records = []
    for seq in range(1, calls + 1):
        task = f"task-{seq % 4}"
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Fix issue {number}-{task}"},
            {"role": "assistant", "content": f"step {seq}"},
            {"role": "tool", "content": tool_output(rng, TOOL_OUTPUT_CHARS)},
        ]
        records.append(
            make_record(seq=seq, task_id=task, turn=1 + seq // 8, messages=messages, stream=seq % 2 == 0)
        )
    return write_run(runs_dir, f"bench-{number:03d}-20251121T081500-a1b2c3", records)


def build_dataset(work: Path, files: int, calls: int) -> list[Path]:
    rng = random.Random(7)
    paths = []
    for number in range(files):
        run_dir = synthetic_run(work / "runs", number, calls, rng)
        paths += export_parquet(run_dir, work / "parquet")
    return paths


async def measure_ours(hub: FakeHub, files: int) -> dict[str, float]:
    source = HubSource(HfApi(endpoint=hub.url, token=False), REPO)
    app = InspectApp(source)
    started = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(DataTable)
        while table.row_count < files:
            await pilot.pause(0.005)
        first_list = time.perf_counter() - started
        while app.footers_pending or any(row.item.rows is None for row in app.level.rows):
            await pilot.pause(0.005)
        labelled = time.perf_counter() - started
        fetched = source.bytes_fetched
        await pilot.press("escape")
    return {"first_list_s": first_list, "labelled_s": labelled, "bytes": fetched}


def measure_baseline(hub: FakeHub, cache: Path) -> dict[str, float]:
    api = HfApi(endpoint=hub.url, token=False)
    started = time.perf_counter()
    fetched = 0
    for entry in api.list_repo_tree(REPO, "data", repo_type="dataset"):
        local = Path(api.hf_hub_download(REPO, entry.path, repo_type="dataset", cache_dir=cache))
        fetched += local.stat().st_size
        pq.read_metadata(local)
    return {"labelled_s": time.perf_counter() - started, "bytes": fetched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--calls", type=int, default=150, help="calls per run (per file)")
    args = parser.parse_args()
    disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        work = Path(tmp)
        paths = build_dataset(work, args.files, args.calls)
        hub.create_repo(REPO)
        for path in paths:
            hub.put_file(REPO, f"data/{path.name}", path.read_bytes())
        total = sum(path.stat().st_size for path in paths)
        print(
            f"dataset: {len(paths)} files, {total / 1e6:.1f} MB ({total / len(paths) / 1e3:.0f} KB per file)"
        )
        ours = asyncio.run(measure_ours(hub, len(paths)))
        baseline = measure_baseline(hub, work / "cache")
    print(f"ours      first file list rendered  {ours['first_list_s']:.3f} s   (target < 1 s)")
    print(f"ours      every row labelled        {ours['labelled_s']:.3f} s")
    print(f"baseline  every row labelled        {baseline['labelled_s']:.3f} s   (download each file)")
    share = ours["bytes"] / total
    print(
        f"ours      bytes before opening      {ours['bytes']:,} = {share:.2%} of the dataset   (target <= 1%)"
    )
    print(f"baseline  bytes before opening      {baseline['bytes']:,} = {baseline['bytes'] / total:.0%}")
    print(
        f"ratios    labelled {baseline['labelled_s'] / ours['labelled_s']:.1f}x faster, "
        f"{baseline['bytes'] / max(1, ours['bytes']):.0f}x fewer bytes than the baseline"
    )


if __name__ == "__main__":
    main()
