"""--redact edge cases with the fake trufflehog: refusals that keep anything from being published."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result
from factories import make_record, write_run
from scan_fakes import canary_secrets

from exporter.export.command import export_command
from exporter.export.gate.redact import SQLITE_MAGIC
from exporter.scan.command import scan_command

SECRET = canary_secrets()["github"]
RUN_ID = "demo-20261121T081500-a1b2c3"


def make_runs(tmp_path: Path, traces: dict[str, str | bytes] | None = None) -> Path:
    runs = tmp_path / "runs"
    write_run(
        runs, RUN_ID, [make_record(seq=1, messages=[{"role": "user", "content": SECRET}])], traces=traces
    )
    return runs


def export_redacted(runs: Path, output: Path) -> Result:
    return CliRunner().invoke(export_command, [str(runs), "-o", str(output), "--redact"])


def published(output: Path) -> list[str]:
    return [path.name for path in output.rglob("*") if path.is_file() and path.name != "scan-report.json"]


def test_a_sqlite_trace_that_cannot_be_redacted_is_refused_by_name(fake, tmp_path):
    broken = SQLITE_MAGIC + b"\x00" * 84 + f"not really a database {SECRET}\n".encode()
    runs = make_runs(tmp_path, traces={"store/broken.db": broken})
    fake.scenario({SECRET: {"detector": "Github"}})
    output = tmp_path / "export"

    result = export_redacted(runs, output)

    assert result.exit_code == 1
    assert (
        f"cannot redact the SQLite trace file agentcap-demo-traces/traces/{RUN_ID}/store/broken.db"
        in result.stderr
    )
    assert published(output) == []
    assert SECRET not in result.stderr + result.stdout
    assert (runs / RUN_ID / "traces" / "store" / "broken.db").read_bytes() == broken


def test_nothing_is_published_when_the_rescan_still_finds_a_secret(fake, tmp_path):
    # The scanner reports a decoded form that never appears literally (as with a base64-wrapped key),
    # so replacement cannot work: the re-scan of the output must catch it.
    runs = make_runs(tmp_path)
    fake.scenario({SECRET: {"detector": "Github", "raw": "decoded-form-of-the-token-0000"}})
    output = tmp_path / "export"

    result = export_redacted(runs, output)

    assert result.exit_code == 1
    # found in the parquet and in the session built from the same call
    assert "--redact: the re-scan still finds 2 secret(s) in the output" in result.stderr
    assert re.search(r"agentcap-captures/data/train-[^ ]+\.parquet \(Github, ", result.stderr)
    assert published(output) == []


def test_redact_rescans_runs_whose_cached_result_has_findings(fake, tmp_path):
    runs = make_runs(tmp_path)
    fake.scenario({SECRET: {"detector": "Github"}})
    assert CliRunner().invoke(scan_command, [str(runs)]).exit_code == 0
    captures = str(runs / RUN_ID / "captures.jsonl")
    assert [argv[1] for argv in fake.calls()].count(captures) == 1

    result = export_redacted(runs, tmp_path / "export")

    # the cache holds only hashes, so the secrets come from a fresh scan; then the output is re-scanned
    assert result.exit_code == 0, result.output
    assert [argv[1] for argv in fake.calls()].count(captures) == 2
    assert any(".agentcap-staging-" in argv[1] and "/local/" in argv[1] for argv in fake.calls())
