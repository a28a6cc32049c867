"""The scan gate with a fake trufflehog on PATH: block / surface / fail closed, never leak a secret."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from factories import make_record, write_run
from scan_fakes import TRUFFLEHOG_VERSION, FakeTrufflehog, canary_secrets

from exporter.export.command import export_command
from exporter.scan.command import scan_command
from exporter.scan.inputs import CACHE_FILE_NAME
from exporter.scan.scanners.output import failure_excerpt

SECRETS = canary_secrets()
GITHUB, HUGGINGFACE = SECRETS["github"], SECRETS["huggingface"]
RUN_ID = "demo-20261121T081500-a1b2c3"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """One run: a GitHub-shaped canary in a prompt (line 2), a HF-shaped one in a trace file (line 3)."""
    runs = tmp_path / "runs"
    records = [
        make_record(seq=1),
        make_record(seq=2, messages=[{"role": "user", "content": f"env says GITHUB_TOKEN={GITHUB}"}]),
    ]
    trace = "\n".join(
        ['{"type":"session"}', '{"type":"user","text":"hi"}', f'{{"tool_output":"{HUGGINGFACE}"}}']
    )
    write_run(runs, RUN_ID, records, traces={"session-1.jsonl": trace + "\n"})
    return runs


def export(runs_dir: Path, output: Path, *args: str) -> Result:
    return CliRunner().invoke(export_command, [str(runs_dir), "--output", str(output), *args])


def scan(runs_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(scan_command, [str(runs_dir), *args])


def assert_no_raw_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text


def scans_of(fake: FakeTrufflehog, name: str) -> int:
    """How many trufflehog processes read the file `name` itself (one file per process)."""
    return sum(1 for argv in fake.calls() if Path(argv[1]).name == name)


def published_files(output: Path) -> list[Path]:
    return [path for path in output.rglob("*") if path.is_file() and path.name != "scan-report.json"]


def report(output: Path) -> dict:
    return json.loads((output / "local" / "scan-report.json").read_text())


def both_secrets(*, github_verified: bool) -> dict[str, dict[str, object]]:
    return {
        GITHUB: {"detector": "Github", "verified": github_verified},
        HUGGINGFACE: {"detector": "HuggingFace", "verified": False},
    }


def test_verified_hit_blocks_the_export_and_nothing_is_published(fake, runs_dir, tmp_path):
    fake.scenario(both_secrets(github_verified=True))
    output = tmp_path / "export"

    result = export(runs_dir, output)

    assert result.exit_code == 1, result.output
    # in captures.jsonl, and twice in the session rebuilt from it (its title and the prompt itself):
    # sessions are scanned as published
    assert re.search(r"secret scan blocked the export: 3 blocking\s+finding\(s\)", result.stderr)
    assert published_files(output) == []
    data = report(output)
    assert data["decision"] == "blocked"
    assert data["scanner"] == "trufflehog" and data["scanner_version"] == TRUFFLEHOG_VERSION
    findings = {f["file"]: f for f in data["runs"][0]["findings"]}
    assert findings["captures.jsonl"]["status"] == "verified" and findings["captures.jsonl"]["line"] == 2
    assert findings["traces/session-1.jsonl"]["status"] == "unverified"
    assert findings["traces/session-1.jsonl"]["line"] == 3
    assert findings["captures.jsonl"]["preview"] == f"{GITHUB[:4]}…{GITHUB[-4:]}"
    assert findings[f"agentcap-sessions/sessions/{RUN_ID}/task-1.side-2.jsonl"]["status"] == "verified"
    cache = (runs_dir / RUN_ID / CACHE_FILE_NAME).read_text()
    report_text = (output / "local" / "scan-report.json").read_text()
    assert_no_raw_secret(result.stdout, result.stderr, report_text, cache)


def test_unverified_hits_are_listed_but_do_not_block(fake, runs_dir, tmp_path):
    fake.scenario(both_secrets(github_verified=False))
    output = tmp_path / "export"

    result = export(runs_dir, output)

    assert result.exit_code == 0, result.output
    assert "Github" in result.stderr and "captures.jsonl:2" in result.stderr
    assert "passed with findings" in result.stderr
    assert report(output)["decision"] == "passed with findings"
    card = (output / "local" / "agentcap-captures" / "README.md").read_text()
    assert "## Secret scan" in card and f"trufflehog {TRUFFLEHOG_VERSION}" in card
    assert "verified hits block" in card and "0 verified, 0 unknown, 4 unverified" in card  # 2 in the session
    assert_no_raw_secret(result.stdout, result.stderr, card)


def test_block_on_any_makes_unverified_hits_block(fake, runs_dir, tmp_path):
    fake.scenario(both_secrets(github_verified=False))

    result = export(runs_dir, tmp_path / "export", "--block-on", "any")

    assert result.exit_code == 1
    assert "4 blocking finding(s)" in result.stderr  # 2 in the run's files, 2 in the session
    assert published_files(tmp_path / "export") == []


def test_verification_error_is_unknown_and_listed(fake, runs_dir):
    fake.scenario({GITHUB: {"detector": "Github", "verification_error": "dial tcp: i/o timeout"}})

    result = scan(runs_dir, "--json")

    assert result.exit_code == 0
    [finding] = json.loads(result.stdout)["runs"][0]["findings"]
    assert finding["status"] == "unknown" and finding["blocks"] is False


def test_no_verify_runs_offline_and_then_blocks_on_any_hit(fake, runs_dir, tmp_path):
    fake.scenario(both_secrets(github_verified=True))

    result = export(runs_dir, tmp_path / "export", "--no-verify")

    assert result.exit_code == 1
    assert "--no-verification" in fake.calls()[-1]
    data = report(tmp_path / "export")
    assert data["policy"] == {"block_on": "any", "verify": False}
    assert {f["status"] for f in data["runs"][0]["findings"]} == {"unverified"}


def test_clean_scan_publishes_and_the_card_records_scanner_and_policy(fake, runs_dir, tmp_path):
    output = tmp_path / "export"

    result = export(runs_dir, output)

    assert result.exit_code == 0, result.output
    [parquet] = (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
    assert pq.read_table(parquet).num_rows == 2
    assert report(output)["decision"] == "clean"
    traces_card = (output / "local" / "agentcap-demo-traces" / "README.md").read_text()
    assert f"**trufflehog {TRUFFLEHOG_VERSION}**" in traces_card and "decision: clean" in traces_card
    # One file per trufflehog process (its byte count is then that file's), each read whole.
    calls = fake.calls()
    assert all(len([arg for arg in argv[1:] if arg.startswith("/")]) == 1 for argv in calls)
    scanned = {Path(argv[1]).name for argv in calls}
    assert {"captures.jsonl", "run.json", "session-1.jsonl"} <= scanned
    assert {"task-1.jsonl", "task-1.side-2.jsonl"} <= scanned  # the sessions, as published
    views = {name.removesuffix(".decoded") for name in scanned if name.endswith(".decoded")}
    assert views <= {
        "captures.jsonl",
        "run.json",
        "session-1.jsonl",
        "task-1.jsonl",
        "task-1.side-2.jsonl",
    }  # decoded views, where there is text
    assert not any(arg.endswith(".parquet") for argv in calls for arg in argv)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("crash", "trufflehog failed (exit code 2): panic: runtime error"),
        ("dies-after-findings", "trufflehog failed (exit code 1): {"),  # its stdout quoted, secrets masked
        ("garbage", "not JSON (stdout line 1)"),
        ("no-stats", "without its `finished scanning` summary"),
        ("lying-exit", "exit code 0 contradicts the 1 findings"),
        ("v2", "found trufflehog 2.2.1, but agentcap needs trufflehog v3"),
    ],
)
def test_a_scan_that_cannot_be_trusted_stops_the_export(fake, runs_dir, tmp_path, mode, reason):
    fake.scenario(both_secrets(github_verified=False), mode=mode)
    output = tmp_path / "export"

    result = export(runs_dir, output)

    assert result.exit_code == 2, result.output
    assert reason in result.stderr
    assert published_files(output) == []
    assert not (runs_dir / RUN_ID / CACHE_FILE_NAME).exists()
    assert_no_raw_secret(result.stdout, result.stderr)


def test_missing_scanner_fails_closed_with_install_hints_and_alternatives(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("AGENTCAP_SCANNER", "trufflehog")

    result = export(runs_dir, tmp_path / "export")

    assert result.exit_code == 2
    message = result.stderr
    # Checked before any run is read: the one line is all there is (no progress bar, no build).
    assert message.startswith("Error: trufflehog is not installed") and message.count("\n") == 1
    assert "trufflehog is not installed" in message and "brew install trufflehog" in message
    assert "install.sh" in message and "apt" in message
    assert "--scanner kingfisher" in message and "--no-scan" in message
    assert published_files(tmp_path / "export") == []


def test_no_scan_publishes_loudly_and_the_card_says_so(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    output = tmp_path / "export"

    result = export(runs_dir, output, "--no-scan")

    assert result.exit_code == 0, result.output
    assert "WARNING: --no-scan" in result.stderr
    card = (output / "local" / "agentcap-captures" / "README.md").read_text()
    assert "**Not scanned**" in card


def test_redact_without_scan_is_refused(runs_dir, tmp_path):
    result = export(runs_dir, tmp_path / "export", "--no-scan", "--redact")

    assert result.exit_code == 2
    assert "--redact needs the secret scan" in result.stderr


def test_redact_with_trufflehog_replaces_the_secrets_and_rescans(fake, runs_dir, tmp_path):
    fake.scenario(both_secrets(github_verified=True))
    output = tmp_path / "export"
    original = (runs_dir / RUN_ID / "captures.jsonl").read_bytes()

    result = export(runs_dir, output, "--redact")

    assert result.exit_code == 0, result.output
    assert report(output)["decision"] == "redacted"
    for path in published_files(output):
        assert_no_raw_secret(path.read_bytes().decode("utf-8", "replace"))
    trace = (output / "local" / "agentcap-demo-traces" / "traces" / RUN_ID / "session-1.jsonl").read_text()
    assert "[REDACTED:HuggingFace:" in trace
    [parquet] = (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
    requests = pq.read_table(parquet).column("request").to_pylist()
    assert any("[REDACTED:Github:" in request for request in requests)
    assert (runs_dir / RUN_ID / "captures.jsonl").read_bytes() == original
    # the second scan (of the output) was offline
    assert "--no-verification" in fake.calls()[-1]


def test_scan_command_exit_codes(fake, runs_dir, tmp_path, monkeypatch):
    assert scan(runs_dir).exit_code == 0

    # The cache keys on content, scanner, version and options: a changed scanner verdict needs --rescan.
    fake.scenario(both_secrets(github_verified=False))
    listed = scan(runs_dir, "--rescan")
    assert listed.exit_code == 0 and "HuggingFace" in listed.stdout
    assert scan(runs_dir, "--block-on", "any").exit_code == 1  # policy applies to the cached result

    fake.scenario(both_secrets(github_verified=True))
    blocked = scan(runs_dir, "--json", "--rescan")
    assert blocked.exit_code == 1
    assert json.loads(blocked.stdout)["decision"] == "blocked"
    assert_no_raw_secret(listed.stdout, blocked.stdout, blocked.stderr)

    fake.scenario(mode="crash")
    assert scan(runs_dir, "--rescan").exit_code == 2
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert scan(runs_dir).exit_code == 2


def test_cache_is_reused_until_content_scanner_version_or_options_change(fake, runs_dir):
    fake.scenario(both_secrets(github_verified=False))
    assert scan(runs_dir).exit_code == 0
    assert scans_of(fake, "captures.jsonl") == 1

    cached = scan(runs_dir, "--json")
    assert scans_of(fake, "captures.jsonl") == 1
    assert json.loads(cached.stdout)["runs"][0]["from_cache"] is True
    assert len(json.loads(cached.stdout)["runs"][0]["findings"]) == 2

    scan(runs_dir, "--rescan")
    assert scans_of(fake, "captures.jsonl") == 2

    scan(runs_dir, "--no-verify")
    assert scans_of(fake, "captures.jsonl") == 3

    fake.scenario(both_secrets(github_verified=False), version="3.91.0")
    scan(runs_dir)
    assert scans_of(fake, "captures.jsonl") == 4

    trace = runs_dir / RUN_ID / "traces" / "session-1.jsonl"
    trace.write_text('{"type":"session"}\n')
    after_edit = scan(runs_dir, "--json")
    assert scans_of(fake, "captures.jsonl") == 5
    assert [f["file"] for f in json.loads(after_edit.stdout)["runs"][0]["findings"]] == ["captures.jsonl"]


def test_findings_of_many_runs_land_in_their_run(fake, tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "run-a", [make_record(seq=1, messages=[{"role": "user", "content": GITHUB}])])
    write_run(runs, "run-b", [make_record(seq=1)])
    write_run(runs, "run-c", [make_record(seq=1, messages=[{"role": "user", "content": GITHUB}])])
    fake.scenario({GITHUB: {"detector": "Github", "verified": True}})

    result = scan(runs, "--json")

    assert scans_of(fake, "captures.jsonl") == 3  # one scan, each file once
    by_run = {run["run_id"]: run["findings"] for run in json.loads(result.stdout)["runs"]}
    assert [len(by_run[run]) for run in ("run-a", "run-b", "run-c")] == [1, 0, 1]
    assert result.exit_code == 1


def test_scanner_error_excerpts_never_quote_a_secret():
    for secret in canary_secrets().values():
        excerpt = failure_excerpt(f'error: {{"Raw": "{secret}", "file": "captures.jsonl"}}')
        assert secret not in excerpt and excerpt.startswith('error: {"Raw": "')
