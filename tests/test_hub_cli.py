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

from exporter.core.errors import UserError
from exporter.core.names import parse_export_name
from exporter.export.command import export_command

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


ACCEPTED = [
    ("alice/agent-runs", ("alice", "agent-runs")),
    ("hf://datasets/my-org/runs.v2/", ("my-org", "runs.v2")),
    ("https://huggingface.co/datasets/alice/runs", ("alice", "runs")),
]
REFUSED = [
    "alice",
    "alice/a/b",
    "hf://models/alice/runs",
    "al ice/x",
    "a/b--c",
    "alice/a..b",
    "o/" + "b" * 61,
]


@pytest.mark.parametrize("option", ["--name", "--push"])
@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_name_and_push_accept_owner_base_hf_uri_and_hub_url(option, value, expected):
    target = parse_export_name(value, option=option)
    assert (target.owner, target.name) == expected


@pytest.mark.parametrize("option", ["--name", "--push"])
@pytest.mark.parametrize("value", REFUSED)
def test_name_and_push_refuse_the_same_names_in_one_line(option, value):
    with pytest.raises(UserError) as error:
        parse_export_name(value, option=option)
    assert "\n" not in error.value.message and error.value.message.startswith(f"{option} ")


def test_a_name_the_hub_refuses_is_refused_for_a_local_export_too(runs_dir, tmp_path):
    # The local output is documented as exactly what a push publishes: `alice/a--b` used to work here.
    result = export(str(runs_dir), "--name", "alice/a--b", "--no-scan", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--name 'alice/a--b'" in result.output
    assert not (tmp_path / "out").exists()


def test_a_hub_url_names_a_local_export(runs_dir, tmp_path):
    url = "https://huggingface.co/datasets/alice/agent-runs"
    result = export(str(runs_dir), "--name", url, "--no-scan", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "alice" / "agent-runs-captures" / "README.md").is_file()


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
        (["--push", "tester"], "--push 'tester': expected OWNER/NAME, hf://datasets/OWNER/NAME or"),
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
