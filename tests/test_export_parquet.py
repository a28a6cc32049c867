"""Records → parquet, column by column: schema, order, types, values, sort, metadata, file names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import BASE_TIME, make_record, write_run

from exporter.core.names import ExportStamp, parquet_filename, provider_for, slug
from exporter.core.record import CAPTURE_SCHEMA
from exporter.export.build.dataset_schema import CAPTURES_SCHEMA, DATASET_SCHEMA_VERSION
from exporter.export.command import export_command

DOCUMENTED = [
    "request_id", "model", "captured_at", "task_id", "turn", "request", "response",
    "served_by", "served_build_info", "served_model", "provider", "upstream_url",
]  # fmt: skip
EXTRAS = [
    "run_id", "agent", "seq", "api", "stream", "status_code", "ttfb_ms", "duration_ms", "usage", "error",
]  # fmt: skip
TOKENS = [  # since captures-dataset/2, at the end: files of /1 lack only these
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "total_tokens",
]  # fmt: skip
FILENAME = re.compile(
    r"data/train-(?P<agent>[^-]+)-(?P<rest>.+)-(?P<utc>\d{8}T\d{6})-(?P<hex>[0-9a-f]{6})\.parquet"
)


def export(tmp_path: Path, *args: str) -> Path:
    output = tmp_path / "export"
    result = CliRunner().invoke(
        export_command, [*args, "--no-scan", "--output", str(output)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return output / "local" / "agentcap-captures"


def parquet_files(captures: Path) -> list[Path]:
    return sorted((captures / "data").glob("*.parquet"))


@pytest.fixture
def mixed_run(tmp_path: Path) -> Path:
    """Completion order ≠ arrival order; a streamed, a 500, an unreachable upstream; non-ASCII."""
    records = [
        make_record(seq=3, task_id="t-b", turn=1, stream=True, reply="streamed déjà vu"),
        make_record(seq=1, task_id="t-a", turn=1, messages=[{"role": "user", "content": "héllo 世界\nsecond line"}]),
        make_record(seq=4, task_id="t-a", turn=2, status_code=500),
        make_record(seq=2, task_id="t-a", turn=1, status_code=0, error={"kind": "upstream_unreachable", "message": "refused"}),
    ]  # fmt: skip
    return write_run(tmp_path / "runs", "demo-20261121T081500-a1b2c3", records, agent="demo")


def test_schema_is_fixed_and_ordered() -> None:
    assert CAPTURES_SCHEMA.names == DOCUMENTED + EXTRAS + TOKENS
    assert CAPTURES_SCHEMA.field("captured_at").type == pa.timestamp("us", tz="UTC")
    assert CAPTURES_SCHEMA.field("turn").type == pa.int64()
    assert CAPTURES_SCHEMA.field("status_code").type == pa.int32()
    assert all(CAPTURES_SCHEMA.field(name).nullable for name in EXTRAS + TOKENS)
    assert all(CAPTURES_SCHEMA.field(name).type == pa.int64() for name in TOKENS)
    assert not CAPTURES_SCHEMA.field("request").nullable


def test_round_trip_column_by_column(tmp_path: Path, mixed_run: Path) -> None:
    captures = export(tmp_path, str(mixed_run))
    [path] = parquet_files(captures)
    table = pq.read_table(path)
    assert table.schema.remove_metadata().equals(CAPTURES_SCHEMA)
    rows = table.to_pylist()
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    first, failed, streamed, error_500 = rows
    source = {json.loads(line)["seq"]: json.loads(line) for line in (mixed_run / "captures.jsonl").open()}

    assert first["request_id"] == source[1]["request_id"]
    assert first["model"] == "org/gpt-test"
    assert first["captured_at"] == datetime.fromtimestamp(BASE_TIME + 1, UTC)
    assert (first["task_id"], first["turn"]) == ("t-a", 1)
    assert json.loads(first["request"]) == source[1]["request"]["body"]
    assert "héllo 世界" in first["request"]  # UTF-8 kept, not \u-escaped
    assert json.loads(first["response"]) == source[1]["response"]["body"]
    assert (first["served_by"], first["served_build_info"], first["served_model"]) == (
        "fake-edge-1",
        "fake-build-42",
        "org/gpt-test-served",
    )
    assert (first["provider"], first["upstream_url"]) == ("local", "http://127.0.0.1:9000")
    assert (first["run_id"], first["agent"], first["api"]) == (
        "demo-20261121T081500-a1b2c3",
        "demo",
        "chat.completions",
    )
    assert (first["stream"], first["status_code"], first["ttfb_ms"], first["duration_ms"]) == (
        False,
        200,
        12.5,
        40.25,
    )
    assert json.loads(first["usage"]) == source[1]["usage"]
    assert [first[name] for name in TOKENS] == [10, None, None, 3, None, 13]  # the factory's chat usage
    assert first["error"] is None

    assert streamed["stream"] is True
    assert json.loads(streamed["response"]) == {"stream": True, "raw": source[3]["response"]["raw"]}

    error = {"kind": "upstream_unreachable", "message": "refused"}
    assert json.loads(failed["error"]) == error
    assert json.loads(failed["response"]) == {"error": error}
    assert (failed["status_code"], failed["stream"], failed["usage"], failed["served_by"]) == (
        None,
        None,
        None,
        None,
    )
    assert [failed[name] for name in TOKENS] == [None] * len(TOKENS)  # no usage reported: null, not 0

    assert error_500["status_code"] == 500
    assert json.loads(error_500["response"]) == {"error": {"message": "scripted failure"}}


def test_footer_metadata_and_filename(tmp_path: Path, mixed_run: Path) -> None:
    [path] = parquet_files(export(tmp_path, str(mixed_run)))
    match = FILENAME.fullmatch(f"data/{path.name}")
    assert match, path.name
    assert match["agent"] == "demo" and match["rest"] == "gpt-test-local"
    minted = datetime.strptime(match["utc"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    assert abs(minted - datetime.now(UTC)) < timedelta(minutes=2)  # not `.seconds`: it ignores whole days
    metadata = {key.decode(): value.decode() for key, value in pq.read_metadata(path).metadata.items()}
    assert metadata["agent"] == "demo"
    assert metadata["model"] == "org/gpt-test"
    assert metadata["provider"] == "local"
    assert metadata["run_id"] == "demo-20261121T081500-a1b2c3"
    assert metadata["schema_version"] == DATASET_SCHEMA_VERSION
    assert metadata["capture_schema"] == CAPTURE_SCHEMA
    assert metadata["exporter_version"].startswith("agentcap ")
    assert json.loads(metadata["tasks"]) == [
        {"id": "t-a", "turns": 2, "calls": 3, "prompt": "héllo 世界 second line"},
        {"id": "t-b", "turns": 1, "calls": 1, "prompt": "prompt 3"},
    ]


def test_parquet_settings(tmp_path: Path, mixed_run: Path) -> None:
    [path] = parquet_files(export(tmp_path, str(mixed_run)))
    parquet = pq.ParquetFile(path)
    column = parquet.metadata.row_group(0).column(CAPTURES_SCHEMA.get_field_index("request"))
    assert column.compression == "ZSTD"
    assert column.has_offset_index and column.has_column_index is False  # no stats on the big JSON text
    assert parquet.metadata.row_group(0).sorting_columns[0].column_index == CAPTURES_SCHEMA.get_field_index(
        "seq"
    )


def test_row_groups_are_sized_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exporter.export.build.captures_parquet.ROW_GROUP_BYTES", 20_000)
    big = "x" * 9_000
    records = [make_record(seq=seq, messages=[{"role": "user", "content": big}]) for seq in range(1, 8)]
    run = write_run(tmp_path / "runs", "r1", records)
    [path] = parquet_files(export(tmp_path, str(run)))
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups > 1
    for index in range(parquet.metadata.num_row_groups - 1):
        group = parquet.read_row_group(index, columns=["request", "response"]).to_pylist()
        sizes = [len(row["request"].encode()) + len(row["response"].encode()) for row in group]
        # A group closes with the row that takes it to the byte target, not before, not after.
        assert sum(sizes[:-1]) < 20_000 <= sum(sizes)
    assert pq.read_table(path).column("seq").to_pylist() == list(range(1, 8))


def test_two_models_and_two_upstreams_make_separate_files(tmp_path: Path) -> None:
    records = [
        make_record(seq=1, model="org/alpha"),
        make_record(seq=2, model="org/beta"),
        make_record(seq=3, model="org/alpha", upstream_url="https://router.huggingface.co"),
        make_record(seq=4, model="org/alpha"),
    ]
    run = write_run(tmp_path / "runs", "r1", records, agent="pi")
    files = parquet_files(export(tmp_path, str(run)))
    by_group = {}
    for path in files:
        table = pq.read_table(path)
        assert len(set(table.column("provider").to_pylist())) == 1
        assert len(set(table.column("upstream_url").to_pylist())) == 1
        by_group[(table.column("model")[0].as_py(), table.column("provider")[0].as_py())] = (
            table.column("seq").to_pylist(),
            path.name,
        )
    assert {key: seqs for key, (seqs, _) in by_group.items()} == {
        ("org/alpha", "local"): [1, 4],
        ("org/beta", "local"): [2],
        ("org/alpha", "hf-router"): [3],
    }
    assert by_group[("org/alpha", "hf-router")][1].startswith("train-pi-alpha-hf-router-")
    assert len({pq.read_schema(path).remove_metadata() for path in files}) == 1


def test_non_json_bodies_and_websocket_are_kept(tmp_path: Path) -> None:
    text_call = make_record(seq=1)
    del text_call["request"]["body"]
    text_call["request"]["body_text"] = "plain text"
    text_call["response"] = text_call["response"] | {"body_base64": "AAEC"}
    del text_call["response"]["body"]
    socket_call = make_record(seq=2)
    socket_call["transport"] = "websocket"
    socket_call["websocket"] = {
        "messages": [{"from": "client", "timestamp": 1.0, "text": "{}"}],
        "close_code": 1000,
    }
    run = write_run(tmp_path / "runs", "r1", [text_call, socket_call])
    rows = sorted(
        (
            row
            for path in parquet_files(export(tmp_path, str(run)))
            for row in pq.read_table(path).to_pylist()
        ),
        key=lambda row: row["seq"],
    )
    first, second = rows
    # No JSON body to name the model: the served model stands in.
    assert first["model"] == "org/gpt-test-served"
    assert json.loads(first["request"]) == {"body_text": "plain text"}
    assert json.loads(first["response"]) == {"body_base64": "AAEC"}
    assert json.loads(second["response"]) == {"websocket": socket_call["websocket"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("org/gemma-4-E4B-it", "gemma-4-E4B-it"),
        ("a//b", "b"),
        ("--weird--", "weird"),
        ("///", "x"),
        ("a b!!c", "a-b-c"),
    ],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


@pytest.mark.parametrize(
    ("url", "model", "expected"),
    [
        ("https://router.huggingface.co/v1", "x/y:fireworks-ai", "hf-router/fireworks-ai"),
        ("https://router.huggingface.co", "x/y", "hf-router"),
        ("https://api.openai.com", None, "openai"),
        ("http://localhost:8000", None, "local"),
        ("http://[::1]:8000", None, "local"),
        ("http://10.1.2.3", None, "local"),
        ("http://8.8.8.8", None, "8.8.8.8"),
        ("https://api.mycompany.com", None, "mycompany"),
        ("", None, "unknown"),
    ],
)
def test_provider_for(url: str, model: str | None, expected: str) -> None:
    assert provider_for(url, model) == expected


def test_parquet_filename_slugs_parts() -> None:
    stamp = ExportStamp(datetime(2026, 11, 21, 8, 15, tzinfo=UTC), nonce="n")
    name = parquet_filename(agent="pi", model="org/m:x", provider="hf-router/fw", stamp=stamp, key="a")
    assert re.fullmatch(r"data/train-pi-m-x-hf-router-fw-20261121T081500-[0-9a-f]{6}\.parquet", name)
    # The hex tells files of one export apart, and the same file of two exports.
    assert name != parquet_filename(
        agent="pi", model="org/m:x", provider="hf-router/fw", stamp=stamp, key="b"
    )
    other = ExportStamp(stamp.time, nonce="m")
    assert name != parquet_filename(
        agent="pi", model="org/m:x", provider="hf-router/fw", stamp=other, key="a"
    )


def test_docs_schema_table_matches_the_code() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    section = docs.split("## Captures schema", 1)[1].split("\n\n`request`", 1)[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| `")]
    documented = [
        (name.strip().strip("`"), kind.strip().strip("`"), nullable.strip()) for name, kind, nullable in rows
    ]
    assert documented == [
        (field.name, str(field.type), "yes" if field.nullable else "no") for field in CAPTURES_SCHEMA
    ]


def test_cut_stream_and_undecodable_stream_keep_what_arrived(tmp_path: Path) -> None:
    reset = {"kind": "upstream_reset", "message": "connection reset mid-stream"}
    cut = make_record(seq=1, stream=True, error=reset)
    binary = make_record(seq=2, stream=True)
    del binary["response"]["raw"]
    binary["response"]["raw_base64"] = "//79"
    run = write_run(tmp_path / "runs", "r1", [cut, binary])
    [path] = parquet_files(export(tmp_path, str(run)))
    first, second = pq.read_table(path).to_pylist()
    assert json.loads(first["response"]) == {"stream": True, "raw": cut["response"]["raw"], "error": reset}
    assert json.loads(first["error"]) == reset
    assert json.loads(second["response"]) == {"stream": True, "raw_base64": "//79"}


def test_memory_does_not_grow_with_the_run(tmp_path: Path) -> None:
    # Peak RSS of a fresh process, so Arrow's own allocator counts too (tracemalloc cannot see it).
    # Writing buffers fill up to a fixed size (~155 MB peak, reached by ~40 MB of captures); past
    # that, a run 3x bigger (20 MB → 60 MB) must not need more. Holding the rows instead of writing
    # them group by group costs about +50 MB here.
    content = "y" * 50_000

    def peak_bytes(calls: int) -> int:
        records = [
            make_record(seq=seq, messages=[{"role": "user", "content": content}])
            for seq in range(1, calls + 1)
        ]
        run = write_run(tmp_path / f"runs-{calls}", "r1", records)
        child = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_SCRIPT, str(run), str(tmp_path / f"out-{calls}")],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(child.stdout)

    small, large = peak_bytes(400), peak_bytes(1_200)
    assert large - small < 15 * 1024 * 1024, (small, large)


PEAK_RSS_SCRIPT = """
import sys
from pathlib import Path
from exporter.export.build import captures_parquet
from exporter.shared import runs

captures_parquet.ROW_GROUP_BYTES = 1024 * 1024  # row groups of 1 MB: the run is many of them
runs._MAPPED_WINDOW = 1024 * 1024  # mapped pages of the file count as RSS too: hand them back sooner
run = runs.RunDir.load(Path(sys.argv[1]))
for number, group in enumerate(captures_parquet.index_run(run).groups.values()):
    captures_parquet.write_group(run, group, Path(sys.argv[2]) / f"{number}.parquet")
# VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the forking test process across exec.
status = Path("/proc/self/status").read_text()
print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024)
"""
