"""Issue 11, finding 2: the gate never passes a file the scanner did not read whole.

The real kingfisher on a captures file larger than its default size limit (a sparse file: fast to
make, the canary at its very end), and the fake trufflehog for trufflehog's path.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run
from scan_fakes import FakeTrufflehog, canary_secrets

from exporter.export.command import export_command
from exporter.scan.command import scan_command

KINGFISHER = Path(sys.executable).parent / "kingfisher"
GITHUB = canary_secrets()["github"]
RUN = "demo-20261121T081500-a1b2c3"
KINGFISHER_DEFAULT_LIMIT = 256 * 1024 * 1024

needs_kingfisher = pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")


def scan(*args: str) -> Result:
    return CliRunner().invoke(scan_command, [*args, "--json"], env={"COLUMNS": "400"})


@needs_kingfisher
def test_kingfisher_reads_every_byte_of_a_file_over_its_default_size_limit(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", RUN, [make_record()])
    with (run / "captures.jsonl").open("r+b") as captures:
        captures.truncate(KINGFISHER_DEFAULT_LIMIT + 8 * 1024 * 1024)  # sparse: no time to write
        captures.seek(0, 2)
        captures.write(f"\nGITHUB_TOKEN={GITHUB}\n".encode())

    result = scan(str(run), "--scanner", "kingfisher", "--no-verify")

    assert result.exit_code == 1, result.output
    [finding] = [f for f in json.loads(result.stdout)["runs"][0]["findings"] if f["file"] == "captures.jsonl"]
    assert finding["detector"] == "betterleaks.github-pat"
    assert GITHUB not in result.stdout + result.stderr


@needs_kingfisher
def test_an_inline_ignore_comment_planted_next_to_a_secret_does_not_hide_it(tmp_path: Path) -> None:
    # The recorded agent writes the traces: it must not be able to switch the scanner off.
    trace = f"export GITHUB_TOKEN={GITHUB}  # kingfisher:ignore\n"
    run = write_run(tmp_path / "runs", RUN, [make_record()], traces={"notes.txt": trace})

    result = scan(str(run), "--scanner", "kingfisher", "--no-verify")

    assert result.exit_code == 1, result.output
    files = {finding["file"] for finding in json.loads(result.stdout)["runs"][0]["findings"]}
    assert "traces/notes.txt" in files
    assert GITHUB not in result.stdout + result.stderr


@needs_kingfisher
def test_a_file_kingfisher_cannot_read_whole_fails_the_gate_with_its_name(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("env.txt", f"GITHUB_TOKEN={GITHUB}\n")
    run = write_run(tmp_path / "runs", RUN, [make_record()], traces={"bundle.zip": archive.read_bytes()})

    result = CliRunner().invoke(
        export_command, [str(run), "-o", str(tmp_path / "out"), "--scanner", "kingfisher", "--no-verify"]
    )

    assert result.exit_code == 2, result.output
    assert f"kingfisher read 0 of {archive.stat().st_size} bytes of {RUN}/traces/bundle.zip" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing published, no staging left


def test_a_file_trufflehog_stops_reading_fails_the_gate_with_its_name(
    fake: FakeTrufflehog, tmp_path: Path
) -> None:
    # trufflehog gives up on a file after its per-file time limit and still reports success.
    run = write_run(tmp_path / "runs", RUN, [make_record(seq=n) for n in range(1, 40)])
    size = (run / "captures.jsonl").stat().st_size
    fake.scenario({GITHUB: {"detector": "Github"}}, mode="cut-large", cut_over=5000)

    result = scan(str(run), "--no-verify")

    assert result.exit_code == 2, result.output
    assert f"trufflehog read 5000 of {size} bytes of {RUN}/captures.jsonl" in result.stderr
    assert GITHUB not in result.stdout + result.stderr


def test_trufflehog_is_asked_to_read_files_whole(fake: FakeTrufflehog, tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs", RUN, [make_record()], traces={"s.jsonl": "{}\n"})

    assert scan(str(run), "--no-verify").exit_code == 0

    calls = fake.calls()
    # One file per trufflehog process: its summary then accounts for exactly that file.
    assert sorted(Path(argv[1]).name for argv in calls if not argv[1].endswith(".decoded")) == [
        "captures.jsonl",
        "run.json",
        "s.jsonl",
    ]
    assert all("--archive-timeout=3600s" in argv and "--force-skip-archives" in argv for argv in calls)
