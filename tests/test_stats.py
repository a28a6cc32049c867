"""`agentcap stats` and `ls -l`: totals per run, task and model are the sums over the calls, whether
read from a run, its exported parquet (current or captures-dataset/1), or a Hub dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import export_parquet, make_record, write_run
from fake_hub import FakeHub

from exporter.core.usage import TOKEN_KEYS
from exporter.ls.command import ls_command
from exporter.shared.totals import percentile
from exporter.stats.command import stats_command

PRICES = """
[table]
name = "test prices"
as_of = "2026-01-01"

[models."gpt-big"]
input = 2.0
cached_input = 1.0
output = 10.0
"""


def usage_record(seq: int, *, model: str, task: str, usage: dict[str, Any] | None, **extra: Any) -> dict:
    record = make_record(seq=seq, model=model, task_id=task, **extra)
    record["usage"] = usage
    if usage is not None and record["response"] and record["response"].get("body"):
        record["response"]["body"]["usage"] = usage
    record["duration_ms"] = 100.0 * seq
    return record


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    chat = {"prompt_tokens": 2000, "completion_tokens": 100, "total_tokens": 2100,
            "prompt_tokens_details": {"cached_tokens": 1500},
            "completion_tokens_details": {"reasoning_tokens": 40}}  # fmt: skip
    records = [
        usage_record(1, model="gpt-big", task="t-1", usage=chat),
        usage_record(2, model="gpt-big", task="t-1", usage=chat),
        usage_record(3, model="tiny-unpriced", task="t-2", usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}),
        usage_record(4, model="gpt-big", task="t-2", usage=None, status_code=500),
    ]  # fmt: skip
    return write_run(tmp_path / "runs", "run-a", records, agent="demo")


def stats_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(stats_command, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def per_call_tokens(path: Path) -> dict[str, int | None]:
    """Column sums straight from the parquet rows (null where no row reported the counter)."""
    rows = pq.read_table(path).to_pylist()
    sums: dict[str, int | None] = {}
    for key in TOKEN_KEYS:
        values = [row[key] for row in rows if row[key] is not None]
        sums[key] = sum(values) if values else None
    return sums


def test_run_totals_are_the_sum_over_its_calls(run_dir: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    stats = stats_json(str(run_dir), "--prices", str(prices))
    total = stats["total"]
    assert total["calls"] == 4 and total["failed"] == 1
    assert total["tokens"] == {
        "input_tokens": 2 * 500 + 10,
        "cache_read_tokens": 2 * 1500,
        "cache_write_tokens": None,
        "output_tokens": 2 * 100 + 1,
        "reasoning_tokens": 2 * 40,
        "total_tokens": 2 * 2100 + 11,
    }
    assert total["cost_usd"] == pytest.approx(2 * (500 * 2.0 + 1500 * 1.0 + 100 * 10.0) / 1e6)
    assert (total["priced_calls"], total["unpriced_calls"]) == (2, 1)  # the 500 reported nothing
    assert total["latency_ms"]["p50"] == pytest.approx(250.0)
    assert total["latency_ms"]["p95"] == pytest.approx(385.0)
    assert stats["prices"] == {"source": "test prices", "as_of": "2026-01-01", "estimate": False}
    tasks = {task["task_id"]: task for task in stats["tasks"]}
    assert tasks["t-1"]["calls"] == 2 and tasks["t-2"]["failed"] == 1
    models = {model["model"]: model for model in stats["models"]}
    assert models["tiny-unpriced"]["cost_usd"] is None and models["tiny-unpriced"]["unpriced_calls"] == 1
    for level in ("tasks", "models"):
        summed = sum(entry["tokens"]["total_tokens"] or 0 for entry in stats[level])
        assert summed == total["tokens"]["total_tokens"]
    [run] = stats["runs"]
    assert {k: v for k, v in run.items() if k != "run_id"} == total


def test_parquet_and_old_parquet_give_the_same_totals(run_dir: Path, tmp_path: Path) -> None:
    from_run = stats_json(str(run_dir))["total"]
    paths = export_parquet(run_dir, tmp_path)
    assert len(paths) == 2  # one file per model
    merged: dict[str, int] = {}
    for path in paths:
        from_parquet = stats_json(str(path))["total"]
        for key, value in per_call_tokens(path).items():
            assert from_parquet["tokens"][key] == value
            merged[key] = merged.get(key, 0) + (value or 0)
        # A captures-dataset/1 file of the same calls: no token columns, the usage JSON normalised.
        old = tmp_path / f"old-{path.name}"
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(list(TOKEN_KEYS)), old)
        assert stats_json(str(old))["total"] == from_parquet
    assert {key: value or 0 for key, value in from_run["tokens"].items()} == merged


def test_hub_dataset_is_read_by_ranges(run_dir: Path, tmp_path: Path) -> None:
    from_run = stats_json(str(run_dir))["total"]
    with FakeHub() as hub:
        hub.create_repo("tester/caps-captures")
        for path in export_parquet(run_dir, tmp_path):
            hub.put_file("tester/caps-captures", f"data/{path.name}", path.read_bytes())
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_CACHE": str(tmp_path / "cache")}
        result = CliRunner(env=env).invoke(stats_command, ["hf://datasets/tester/caps-captures", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["total"] == from_run
        missing = CliRunner(env=env).invoke(stats_command, ["hf://datasets/tester/nope"])
    assert missing.exit_code == 2
    assert "no such dataset" in missing.output and "Traceback" not in missing.output


def test_table_output_says_what_has_no_price(run_dir: Path) -> None:
    result = CliRunner().invoke(stats_command, [str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "no price for: gpt-big, tiny-unpriced" in result.output
    assert "(an estimate)" in result.output  # the shipped table says what it is
    assert "$0 " not in result.output


def test_ls_long_shows_the_same_totals(run_dir: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    expected = stats_json(str(run_dir), "--prices", str(prices))["total"]
    listed = CliRunner().invoke(
        ls_command, [str(run_dir.parent), "-l", "--json", "--prices", str(prices)], catch_exceptions=False
    )
    [run] = json.loads(listed.output)
    assert run["totals"] == expected
    table = CliRunner().invoke(ls_command, [str(run_dir.parent), "-l", "--prices", str(prices)])
    assert "$0.0070 +1 no price" in table.output and "1,010       3,000" in table.output
    plain = json.loads(CliRunner().invoke(ls_command, [str(run_dir.parent), "--json"]).output)
    assert plain[0]["totals"] is None  # the extra pass only with -l


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abcdef12"], "a request id names one call"),
        (["nope.parquet"], "no such parquet file"),
        (["{runs}", "--prices", "{tmp}/missing.toml"], "cannot read it"),
    ],
)
def test_bad_input_is_one_line(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [arg.format(runs=run_dir, tmp=tmp_path) for arg in args]
    result = CliRunner().invoke(stats_command, ["--runs-dir", str(tmp_path / "none"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_parquet_that_is_not_captures(tmp_path: Path) -> None:
    import pyarrow as pa

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    result = CliRunner().invoke(stats_command, [str(path)])
    assert result.exit_code == 2 and "not a captures parquet file" in result.output


def test_empty_run() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_untagged_calls_and_empty_runs_dir(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", "r", [make_record(seq=1, task_id=None)])
    stats = stats_json(str(tmp_path / "runs"))
    assert [task["task_id"] for task in stats["tasks"]] == [None]
    (tmp_path / "empty").mkdir()
    write_run(tmp_path / "empty", "r0", [])
    result = CliRunner().invoke(stats_command, [str(tmp_path / "empty" / "r0")])
    assert result.exit_code == 0 and "no calls in" in result.output


def test_inspect_previews_show_the_same_totals(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.inspect.rows import call_preview, run_preview
    from exporter.inspect.sources import RunsDirSource, load_run_calls
    from exporter.shared.prices import env_prices

    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    monkeypatch.setenv("AGENTCAP_PRICES", str(prices))
    env_prices.cache_clear()
    try:
        [entry] = RunsDirSource(run_dir.parent).entries()
        preview = run_preview(entry).plain
        assert "tokens   in 1,010 (cache read 3,000) · out 201 (reasoning 80) · total 4,211" in preview
        assert "cost     $0.0070 +1 no price  (test prices as of 2026-01-01)" in preview
        assert "latency  p50 250 ms, p95 385 ms" in preview
        first = load_run_calls(entry.run)[0]
        call = call_preview(first).plain
        assert "tokens   in 500 (cache read 1,500) · out 100 (reasoning 40) · total 2,100" in call
        assert "cost     $0.0035" in call
    finally:
        env_prices.cache_clear()
