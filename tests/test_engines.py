"""The export's engines: the same runs give the same bytes in this process, in a process pool and as
Ray tasks (a real local Ray instance, started once for this module); a failing run stops them all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run

from exporter.cli import main
from exporter.engines import ray_tasks
from exporter.scan.report import REPORT_FILE

OFFLINE_SCAN = ["--scanner", "kingfisher", "--no-verify"]
ENGINES = [
    ["--engine", "local"],
    ["--engine", "processes", "--workers", "2"],
    ["--engine", "ray", "--workers", "2"],
]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for number, agent in enumerate(("pi", "demo", "demo", "pi")):
        records = [
            make_record(
                seq=seq, task_id=f"task-{seq % 2}", stream=seq % 3 == 0, reply=f"réponse {number}.{seq}"
            )
            for seq in range(1, 12)
        ]
        records.append(make_record(seq=12, model="org/other-model", upstream_url="http://127.0.0.1:9001"))
        trace = json.dumps({"type": "session", "version": 3, "id": f"s{number}", "cwd": "/w"}) + "\n"
        write_run(
            runs,
            f"{agent}-20261121T08{number:02d}00-{number:06x}",
            records,
            agent=agent,
            traces={f"sessions/s{number}.jsonl": trace},
        )
    return runs


def export(runs: Path, output: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["export", str(runs), "-o", str(output), "--rollouts", *OFFLINE_SCAN, *args],
        catch_exceptions=False,
    )


def tree(root: Path) -> dict[str, bytes]:
    """The published files (the scan report is a local note with its own time, never published)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != REPORT_FILE
    }


def test_every_engine_and_worker_count_publishes_the_same_bytes(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_instance: None
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")  # the one stamp that differs between exports
    trees = []
    for number, engine in enumerate(ENGINES):
        result = export(runs, tmp_path / f"out-{number}", *engine)
        assert result.exit_code == 0, result.output
        trees.append(tree(tmp_path / f"out-{number}"))
    # Tasks on another node send their files back instead of writing the staging folder: the same bytes.
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(ray_tasks, "driver_node_id", lambda ray: "a-node-the-tasks-are-not-on")
        result = export(runs, tmp_path / "out-remote", "--engine", "ray", "--workers", "2")
        assert result.exit_code == 0, result.output
        trees.append(tree(tmp_path / "out-remote"))
    assert trees[0] == trees[1] == trees[2] == trees[3]
    names = list(trees[0])
    assert sum(".parquet" in name and "-captures/" in name for name in names) == 8  # 4 runs x 2 groups
    assert sum("-rollouts/data/" in name for name in names) == 4
    assert sum("/traces/" in name for name in names) == 4


def test_without_a_fixed_stamp_two_exports_name_their_files_apart(runs: Path, tmp_path: Path) -> None:
    first = export(runs, tmp_path / "one", "--engine", "local")
    second = export(runs, tmp_path / "two", "--engine", "local")
    assert first.exit_code == second.exit_code == 0
    one = {name for name in tree(tmp_path / "one") if name.endswith(".parquet") and "-captures/" in name}
    two = {name for name in tree(tmp_path / "two") if name.endswith(".parquet") and "-captures/" in name}
    assert len(one) == len(two) == 8 and not one & two


@pytest.mark.parametrize("engine", ENGINES, ids=["local", "processes", "ray"])
def test_a_failing_run_fails_the_export_by_name_and_publishes_nothing(
    engine: list[str], runs: Path, tmp_path: Path, ray_instance: None
) -> None:
    broken = sorted(runs.iterdir())[1]
    with (broken / "captures.jsonl").open("a") as handle:
        handle.write(json.dumps(make_record(seq=99) | {"schema": "agentcap.capture/9"}) + "\n")
    output = tmp_path / "out"
    result = export(runs, output, *engine)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()[-1:]
    assert line.startswith(f"Error: run {broken.name} failed: ")
    assert "unknown record schema 'agentcap.capture/9'" in line and line.endswith("nothing was published")
    assert not (output / "local").exists()


def test_a_ray_address_that_does_not_answer_is_one_line(
    runs: Path, tmp_path: Path, refused_endpoint: str
) -> None:
    address = refused_endpoint.removeprefix("http://")
    result = export(runs, tmp_path / "out", "--engine", "ray", "--ray-address", address)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: --ray-address {address}: nothing answers there (Connection refused); "
        "start the cluster (ray start --head) or fix the address"
    ]
    assert not (tmp_path / "out").exists()


def test_ray_address_needs_the_ray_engine(runs: Path, tmp_path: Path) -> None:
    result = export(runs, tmp_path / "out", "--engine", "processes", "--ray-address", "auto")
    assert result.exit_code == 2 and "--ray-address only works with --engine ray" in result.output
