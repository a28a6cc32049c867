"""`agentcap-export … --push OWNER/BASE` end to end: flags, auth, ordering, against the fake Hub."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run
from scan_fakes import canary_secrets

from exporter.errors import UserError
from exporter.export import export_command
from exporter.hub import parse_push_target

KINGFISHER = Path(sys.executable).parent / "kingfisher"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    write_run(
        runs,
        "run-1",
        [make_record(seq=1), make_record(seq=2, stream=True)],
        agent="demo",
        traces={"session.jsonl": '{"type":"session"}\n'},
    )
    return runs


def export(*args: str) -> Result:
    return CliRunner().invoke(export_command, [*args])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("alice/agent-runs", ("alice", "agent-runs")), ("hf://datasets/my-org/runs.v2/", ("my-org", "runs.v2"))],
)
def test_push_accepts_owner_base_and_hf_uri(value, expected):
    target = parse_push_target(value)
    assert (target.owner, target.base) == expected


@pytest.mark.parametrize(
    "value",
    [
        "alice",
        "alice/a/b",
        "https://huggingface.co/datasets/alice/runs",
        "hf://models/alice/runs",
        "al ice/x",
        "a/b--c",
    ],
)
def test_anything_else_is_a_one_line_error(value):
    with pytest.raises(UserError) as error:
        parse_push_target(value)
    assert "\n" not in error.value.format_message() and "--push" in error.value.format_message()


def test_push_publishes_and_ends_with_every_url(hub, runs_dir):
    result = export(str(runs_dir), "--push", "hf://datasets/tester/agent-runs", "--no-scan")

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    collection = hub.collections_of("tester")[0]
    assert lines[-4].startswith(f"{hub.url}/datasets/tester/agent-runs-captures  (created")
    assert lines[-3].startswith(f"{hub.url}/datasets/tester/agent-runs-demo-traces  (created")
    assert lines[-2].startswith(f"{hub.url}/datasets/tester/agent-runs-sessions  (created")
    assert lines[-1] == f"{hub.url}/collections/{collection['slug']}  (collection, created)"
    assert set(hub.files("tester/agent-runs-demo-traces")) >= {"README.md", "traces/run-1/session.jsonl"}
    assert all(repo.private for repo in hub.repos.values())


def test_the_cached_login_under_hf_home_is_used(hub, runs_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text(hub.token)

    result = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan", "--public")

    assert result.exit_code == 0, result.output
    assert not any(repo.private for repo in hub.repos.values())


def test_no_token_is_a_one_line_error_before_anything_is_built(hub, runs_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.chdir(tmp_path)

    result = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan")

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: no Hugging Face token found; run `hf auth login` "
        "(or set HF_TOKEN to a write token from https://huggingface.co/settings/tokens)"
    )
    assert hub.requests == []
    assert not (tmp_path / "export").exists()


def test_dry_run_via_the_command_changes_nothing(hub, runs_dir):
    result = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan", "--dry-run")

    assert result.exit_code == 0, result.output
    assert hub.write_requests() == [] and hub.repos == {}
    assert "dry-run: create dataset repo tester/agent-runs-captures (private)" in result.stderr
    assert "dry-run:   add traces/run-1/session.jsonl" in result.stderr
    assert result.stdout.strip().endswith("dry run: nothing was created, uploaded or changed on the Hub")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--public"], "--public only work with --push OWNER/BASE"),
        (["--public", "--dry-run"], "--public, --dry-run only work with --push OWNER/BASE"),
        (["--push", "tester/x", "--name", "tester/y"], "--name and --push both name the datasets"),
        (["--push", "tester"], "expected OWNER/BASE or hf://datasets/OWNER/BASE"),
    ],
)
def test_flag_mistakes_are_one_line_errors(hub, runs_dir, args, message):
    result = export(str(runs_dir), "--no-scan", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert hub.requests == []


@pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")
def test_a_blocking_scan_finding_pushes_nothing(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "leaky-runs"
    secret = canary_secrets()["github"]
    write_run(
        runs, "run-1", [make_record(seq=1, messages=[{"role": "user", "content": f"GITHUB_TOKEN={secret}"}])]
    )

    result = export(str(runs), "--push", "tester/agent-runs", "--scanner", "kingfisher", "--no-verify")

    assert result.exit_code == 1
    assert hub.requests == []
    assert secret not in result.output


def test_replace_via_the_command_keeps_one_copy_of_each_row(hub, runs_dir):
    assert export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan").exit_code == 0
    skipped = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan")
    assert "run run-1 is already in the repo; skipped (use --replace to overwrite it)" in skipped.stderr
    replaced = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan", "--replace")
    assert replaced.exit_code == 0, replaced.output

    files = hub.files("tester/agent-runs-captures")
    rows = [
        pq.read_table(io.BytesIO(data)).num_rows for path, data in files.items() if path.endswith(".parquet")
    ]
    assert rows == [2]
    assert [c.summary for c in hub.commits_to("tester/agent-runs-captures")] == [
        "agentcap export: add 1 parquet file from run run-1; add dataset card",
        "agentcap export: replace run run-1",
    ]


def test_a_hub_that_refuses_connections_fails_at_once_in_one_line(runs_dir, refused_endpoint, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", refused_endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")

    result = export(str(runs_dir), "--push", "tester/agent-runs", "--no-scan")

    assert result.exit_code == 1
    assert "retrying" not in result.stderr  # refused is not transient: no 30 s of backoff first
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: pushing tester/agent-runs-captures failed: could not reach {refused_endpoint} "
        "(ConnectError: [Errno 111] Connection refused); check the network or HF_ENDPOINT; nothing was published"
    )
