"""The real kingfisher (validation off) over runs holding synthetic canary secrets."""

from __future__ import annotations

import json
import pickle
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import make_record, write_run
from scan_fakes import canary_secrets

from exporter.export.command import export_command
from exporter.export.gate.redact import key_value_metadata
from exporter.scan.command import scan_command
from exporter.scan.scanners.kingfisher import SCANNER as KINGFISHER_SCANNER
from exporter.scan.types import ScanFailed

KINGFISHER = Path(sys.executable).parent / "kingfisher"
SECRETS = canary_secrets()
RUN_ID = "demo-20261121T081500-a1b2c3"
OFFLINE = ["--scanner", "kingfisher", "--no-verify"]

pytestmark = pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """GitHub canary in a prompt, Slack canary in a streamed reply, HF canary in a trace, Slack in SQLite."""
    runs = tmp_path / "runs"
    records = [
        make_record(seq=1, messages=[{"role": "user", "content": f"GITHUB_TOKEN={SECRETS['github']} ok?"}]),
        make_record(seq=2, stream=True, reply=f"found SLACK_BOT_TOKEN={SECRETS['slack']} in .env"),
        make_record(seq=3),
    ]
    database = tmp_path / "session.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, role TEXT, content TEXT)")
        connection.executemany(
            "INSERT INTO messages (role, content) VALUES (?, ?)",
            [("user", "hello"), ("tool", f"export SLACK_BOT_TOKEN={SECRETS['slack']}")],
        )
    connection.close()
    trace = json.dumps({"type": "tool_result", "output": f"HF_TOKEN={SECRETS['huggingface']}"}) + "\n"
    write_run(
        runs, RUN_ID, records, traces={"session.jsonl": trace, "state/session.db": database.read_bytes()}
    )
    return runs


def output_texts(output: Path) -> dict[str, str]:
    """Every published file as text; parquet decoded (all values and key-value metadata)."""
    texts = {}
    for path in output.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            texts[str(path)] = json.dumps(
                [table.to_pylist(), key_value_metadata(pq.ParquetFile(path))], default=str
            )
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


def test_canaries_are_found_masked_and_block_under_block_on_any(runs_dir):
    result = CliRunner().invoke(scan_command, [str(runs_dir), *OFFLINE, "--block-on", "any", "--json"])

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    findings = report["runs"][0]["findings"]
    found = {(finding["detector"], finding["file"]) for finding in findings}
    assert ("betterleaks.github-pat", "captures.jsonl") in found
    assert ("betterleaks.slack-bot-token", "captures.jsonl") in found
    assert ("betterleaks.huggingface-access-token", "traces/session.jsonl") in found
    # the database is read as the bytes published, and its values through the decoded view
    assert ("betterleaks.slack-bot-token", "traces/state/session.db") in found
    assert {finding["status"] for finding in findings} == {"unverified"}
    assert all(finding["blocks"] for finding in findings)
    github = next(finding for finding in findings if finding["detector"] == "betterleaks.github-pat")
    assert github["preview"] == f"{SECRETS['github'][:4]}…{SECRETS['github'][-4:]}"
    assert report["scanner"] == "kingfisher" and report["policy"] == {"block_on": "any", "verify": False}
    for secret in SECRETS.values():
        assert secret not in result.stdout and secret not in result.stderr
        assert secret not in (runs_dir / RUN_ID / ".agentcap-scan.json").read_text()


def test_export_is_blocked_and_nothing_published(runs_dir, tmp_path):
    output = tmp_path / "export"

    result = CliRunner().invoke(export_command, [str(runs_dir), "-o", str(output), *OFFLINE])

    assert result.exit_code == 1
    assert "secret scan blocked the export" in result.stderr
    assert [path.name for path in output.rglob("*") if path.is_file()] == ["scan-report.json"]


def test_redact_publishes_an_export_with_no_canary_left(runs_dir, tmp_path):
    output = tmp_path / "export"
    originals = {path: path.read_bytes() for path in (runs_dir / RUN_ID).rglob("*") if path.is_file()}

    result = CliRunner().invoke(export_command, [str(runs_dir), "-o", str(output), *OFFLINE, "--redact"])

    assert result.exit_code == 0, result.output
    texts = output_texts(output)
    for text in texts.values():
        for secret in SECRETS.values():
            assert secret not in text
    assert all(secret not in result.stdout + result.stderr for secret in SECRETS.values())
    [parquet] = (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
    table = pq.read_table(parquet)
    assert table.num_rows == 3 and table.column("seq").to_pylist() == [1, 2, 3]
    assert "[REDACTED:betterleaks.github-pat:" in table.column("request")[0].as_py()
    assert "[REDACTED:betterleaks.slack-bot-token:" in table.column("response")[1].as_py()
    metadata = key_value_metadata(pq.ParquetFile(parquet))
    assert metadata["run_id"] == RUN_ID and "[REDACTED:betterleaks.github-pat:" in metadata["tasks"]
    database = output / "local" / "agentcap-demo-traces" / "traces" / RUN_ID / "state" / "session.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT role, content FROM messages ORDER BY id").fetchall()
    assert rows[0] == ("user", "hello") and rows[1][1].startswith("export SLACK_BOT_TOKEN=[REDACTED:")
    report = json.loads((output / "local" / "scan-report.json").read_text())
    assert report["decision"] == "redacted" and report["redaction"]["rescan"] == "clean"
    card = (output / "local" / "agentcap-captures" / "README.md").read_text()
    assert "re-scan of the published files found nothing" in card
    # The runs themselves are untouched.
    assert {path: path.read_bytes() for path in originals} == originals

    # An independent kingfisher run over the published output (parquet rendered as text) finds nothing.
    rendered = tmp_path / "rendered.txt"
    rendered.write_text("\n".join(texts.values()))
    rescan = subprocess.run(
        [
            str(KINGFISHER),
            "scan",
            str(output),
            str(rendered),
            "--format",
            "jsonl",
            "--no-validate",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert rescan.returncode == 0, rescan.stdout[-2000:]


def kingfisher_line(outcome: str, secret: str) -> str:
    finding = {
        "snippet": secret,
        "fingerprint": "1",
        "confidence": "high",
        "validation": {"outcome": outcome, "status": "x", "response": ""},
        "line": 4,
        "path": "/runs/r/captures.jsonl",
        "validate_command": f"kingfisher validate '{secret}'",
    }
    return json.dumps({"rule": {"id": "betterleaks.github-pat", "name": "github-pat"}, "finding": finding})


def audit_line(**summary: int) -> str:
    counts = {
        "discovered": 1,
        "scan_succeeded": 1,
        "scan_failed": 0,
        "scan_partial": 0,
        "pending": 0,
    } | summary
    repository = {"repository": "/runs/r/captures.jsonl", "stats": {"bytes_scanned": 99}}
    return json.dumps({"audit": {"summary": counts, "repositories": [repository]}})


def test_kingfisher_validation_outcomes_map_to_statuses():
    secret = SECRETS["github"]
    stdout = "\n".join(
        [kingfisher_line(outcome, secret) for outcome in ("verified_active", "verified_inactive", "assumed")]
        + [audit_line()]
    )

    parsed = KINGFISHER_SCANNER.parse(stdout=stdout, stderr="", returncode=205)

    assert [finding.status for finding in parsed.findings] == ["verified", "unverified", "unknown"]
    assert parsed.bytes_read == {"/runs/r/captures.jsonl": 99} and parsed.findings[0].line == 4
    assert parsed.secrets.secret(parsed.findings[0].sha256) == secret
    assert secret not in repr(parsed) and secret not in repr(parsed.findings)
    with pytest.raises(TypeError):
        pickle.dumps(parsed.secrets)


@pytest.mark.parametrize(
    ("stdout", "returncode", "reason"),
    [
        ("", 0, "without its audit summary"),
        (audit_line(scan_failed=1, scan_succeeded=0), 0, "did not scan every input completely"),
        ("Error: unrecognized scan target", 1, "kingfisher failed (exit code 1)"),
        (audit_line(), 200, "exit code 200 contradicts the 0 findings"),
        ("{not json", 0, "not JSON"),
    ],
)
def test_kingfisher_output_that_cannot_be_trusted_fails_the_scan(stdout, returncode, reason):
    with pytest.raises(ScanFailed, match=re.escape(reason)):
        KINGFISHER_SCANNER.parse(stdout=stdout, stderr="", returncode=returncode)
